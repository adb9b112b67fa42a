package meshquic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// Peer says whom to call: by node id (address from the address book, or
// Addr if set), or by address alone (any cluster member there).
type Peer struct {
	ID   NodeID
	Addr string
}

// PeerID addresses a node by id; its address comes from SetPeerAddr.
func PeerID(id NodeID) Peer { return Peer{ID: id} }

// PeerAddr addresses whichever member listens at addr.
func PeerAddr(addr string) Peer { return Peer{Addr: addr} }

func (p Peer) String() string {
	if p.ID.IsZero() {
		return p.Addr
	}
	return p.ID.String()
}

// peerConn is the one outgoing connection to an address, plus the state
// that makes a dead peer fail fast: after a failed dial no new dial is tried
// until retryAt, and calls in between get the last error at once.
type peerConn struct {
	addr     string
	conn     *quic.Conn
	id       NodeID
	dialing  chan struct{} // non-nil while a dial runs; closed when it ends
	err      error         // the last dial's error, nil after success
	failures int
	retryAt  time.Time
}

// SetPeerAddr records where node id listens (filled from membership). A
// changed address takes effect for the next connection.
func (e *Endpoint) SetPeerAddr(id NodeID, addr string) {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.addrs[id] = addr
}

// RemovePeer forgets id's address and closes our connection to it.
func (e *Endpoint) RemovePeer(id NodeID) {
	e.pmu.Lock()
	addr, ok := e.addrs[id]
	delete(e.addrs, id)
	var conn *quic.Conn
	if pc := e.peers[addr]; ok && pc != nil {
		conn = pc.conn
		delete(e.peers, addr)
	}
	e.pmu.Unlock()
	if conn != nil {
		_ = conn.CloseWithError(0, "peer removed")
	}
}

// PeerAddrOf returns the recorded address of id.
func (e *Endpoint) PeerAddrOf(id NodeID) (string, bool) {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	a, ok := e.addrs[id]
	return a, ok
}

// conn returns a live connection to p, dialing if needed. It never waits
// longer than ctx, and returns at once during a backoff window.
func (e *Endpoint) conn(ctx context.Context, p Peer) (*quic.Conn, NodeID, error) {
	e.pmu.Lock()
	if e.closed {
		e.pmu.Unlock()
		return nil, NodeID{}, ErrClosed
	}
	addr := p.Addr
	if addr == "" {
		var ok bool
		if addr, ok = e.addrs[p.ID]; !ok {
			e.pmu.Unlock()
			return nil, NodeID{}, fmt.Errorf("%w: %s", ErrUnknownPeer, p.ID)
		}
	}
	pc := e.peers[addr]
	if pc == nil {
		pc = &peerConn{addr: addr}
		e.peers[addr] = pc
	}
	waited := false
	for {
		if pc.conn != nil && pc.conn.Context().Err() == nil {
			conn, id := pc.conn, pc.id
			e.pmu.Unlock()
			if !p.ID.IsZero() && id != p.ID {
				return nil, NodeID{}, fmt.Errorf("%w: %s is node %s, not %s", ErrPeerUnavailable, addr, id, p.ID)
			}
			return conn, id, nil
		}
		if waited && pc.err != nil {
			// The dial we waited for failed: report it rather than
			// starting another.
			err := pc.err
			e.pmu.Unlock()
			return nil, NodeID{}, err
		}
		if ch := pc.dialing; ch != nil {
			e.pmu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, NodeID{}, ctxErr(ctx)
			}
			waited = true
			e.pmu.Lock()
			continue
		}
		if wait := time.Until(pc.retryAt); wait > 0 && pc.err != nil {
			err := pc.err
			e.pmu.Unlock()
			return nil, NodeID{}, fmt.Errorf("%w (next attempt in %v): %w", ErrPeerUnavailable, wait.Round(time.Millisecond), err)
		}
		if err := ctx.Err(); err != nil {
			e.pmu.Unlock()
			return nil, NodeID{}, ctxErr(ctx)
		}
		pc.dialing = make(chan struct{})
		e.wg.Add(1)
		go e.dial(pc)
	}
}

// dial runs detached from any one caller's context, so an impatient caller
// does not spoil the attempt for others waiting on it; DialTimeout bounds it.
func (e *Endpoint) dial(pc *peerConn) {
	defer e.wg.Done()
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.DialTimeout)
	defer cancel()
	conn, id, err := e.dialOnce(ctx, pc.addr)
	e.pmu.Lock()
	defer e.pmu.Unlock()
	close(pc.dialing)
	pc.dialing = nil
	if err == nil && e.closed {
		_ = conn.CloseWithError(appCodeShutdown, "shutting down")
		err = ErrClosed
	}
	if err != nil {
		pc.failures++
		pc.retryAt = time.Now().Add(e.backoff(pc.failures))
		pc.err = err
		e.cfg.Logger.Debug("mesh dial failed", "addr", pc.addr, "failures", pc.failures, "err", err)
		return
	}
	pc.conn, pc.id, pc.err, pc.failures = conn, id, nil, 0
	e.wg.Add(1)
	go e.watch(pc, conn)
}

func (e *Endpoint) dialOnce(ctx context.Context, addr string) (*quic.Conn, NodeID, error) {
	uaddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, NodeID{}, fmt.Errorf("%w: resolve %s: %w", ErrPeerUnavailable, addr, err)
	}
	conn, err := e.tr.Dial(ctx, uaddr, clientTLS(e.cfg.Credentials), e.qconf)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, NodeID{}, fmt.Errorf("%w: dial %s: no answer within %v", ErrPeerUnavailable, addr, e.cfg.DialTimeout)
		}
		if e.ctx.Err() != nil {
			return nil, NodeID{}, ErrClosed
		}
		return nil, NodeID{}, fmt.Errorf("dial %s: %w", addr, mapQUICErr(err))
	}
	id, err := peerID(conn.ConnectionState().TLS)
	if err != nil {
		_ = conn.CloseWithError(0, "unauthenticated")
		return nil, NodeID{}, err
	}
	return conn, id, nil
}

// watch forgets a connection once it closes. A peer that announced its
// shutdown is put in backoff straight away, so calls fail fast instead of
// each paying a dial timeout.
func (e *Endpoint) watch(pc *peerConn, conn *quic.Conn) {
	defer e.wg.Done()
	<-conn.Context().Done()
	cause := context.Cause(conn.Context())
	e.pmu.Lock()
	defer e.pmu.Unlock()
	if pc.conn != conn {
		return
	}
	pc.conn = nil
	var ae *quic.ApplicationError
	var te *quic.TransportError
	switch {
	case errors.As(cause, &ae) && ae.Remote && ae.ErrorCode == appCodeShutdown,
		errors.As(cause, &te) && te.Remote && te.ErrorCode.IsCryptoError():
		pc.failures = 1
		pc.retryAt = time.Now().Add(e.backoff(1))
		pc.err = mapQUICErr(cause)
	}
	e.cfg.Logger.Debug("mesh connection closed", "addr", pc.addr, "peer", pc.id.String(), "cause", cause)
}

// backoff doubles from BackoffMin to BackoffMax with ±25% jitter, so a
// cluster that lost a node does not redial it in lockstep.
func (e *Endpoint) backoff(failures int) time.Duration {
	d := e.cfg.BackoffMin
	for i := 1; i < failures && d < e.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.BackoffMax)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}
