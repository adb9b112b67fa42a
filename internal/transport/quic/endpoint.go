// Package meshquic is the wasmesh mesh transport: QUIC (quic-go) with mutual
// TLS 1.3 between cluster members, length-prefixed msgpack frames on streams,
// subprotocol dispatch, and the remote operations a node offers its peers
// (deliver, spawn, stop, snapshot, module fetch).
//
// One Endpoint per node both listens and dials, from the same UDP socket.
// Every stream carries one request (or one streaming exchange) and starts
// with a header frame naming its subprotocol; the handler for it sees the
// peer's authenticated NodeID.
package meshquic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Application error codes on connection close.
const (
	// appCodeShutdown: the endpoint is closing; the peer should not
	// redial immediately.
	appCodeShutdown quic.ApplicationErrorCode = 1
)

// Stream error codes on reset.
const (
	streamCodeCanceled quic.StreamErrorCode = 1
	streamCodeDone     quic.StreamErrorCode = 2
)

// Endpoint is a node's mesh transport: listener, dialer, connection cache,
// address book and routing table.
type Endpoint struct {
	cfg    Config
	id     NodeID
	udp    *net.UDPConn
	tr     *quic.Transport
	ln     *quic.Listener
	qconf  *quic.Config
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	reqID  atomic.Uint64
	routes *Routes
	reject *rejectCounter

	hmu      sync.RWMutex
	handlers map[string]StreamHandler

	pmu     sync.Mutex
	closed  bool
	addrs   map[NodeID]string
	peers   map[string]*peerConn
	inbound map[*quic.Conn]struct{}

	stopAfter func() bool
	// pipeline is the client side of pipelined delivery, made on first use.
	pipeOnce  sync.Once
	pipeline  *pipeline
	closeOnce sync.Once
	closeErr  error
}

// Listen binds cfg.Addr and starts accepting authenticated peers. The
// endpoint lives until Close or until ctx is cancelled; handler contexts
// derive from ctx.
func Listen(ctx context.Context, cfg Config) (*Endpoint, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	laddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("meshquic: listen address %q: %w", cfg.Addr, err)
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("meshquic: listen %s: %w", cfg.Addr, err)
	}
	e := &Endpoint{
		cfg:      cfg,
		id:       cfg.Credentials.ID(),
		udp:      udp,
		reject:   newRejectCounter(cfg.Logger, cfg.Rejected),
		routes:   NewRoutes(),
		handlers: make(map[string]StreamHandler),
		addrs:    make(map[NodeID]string),
		peers:    make(map[string]*peerConn),
		inbound:  make(map[*quic.Conn]struct{}),
		qconf: &quic.Config{
			HandshakeIdleTimeout: cfg.DialTimeout,
			MaxIdleTimeout:       cfg.MaxIdleTimeout,
			KeepAlivePeriod:      cfg.KeepAlivePeriod,
			MaxIncomingStreams:   cfg.MaxIncomingStreams,
			// Uni streams are unused: requests are bidirectional.
			MaxIncomingUniStreams: -1,
		},
	}
	e.tr = &quic.Transport{Conn: udp, Tracer: e.reject}
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.ln, err = e.tr.Listen(serverTLS(cfg.Credentials), e.qconf)
	if err != nil {
		udp.Close()
		e.cancel()
		return nil, fmt.Errorf("meshquic: listen: %w", err)
	}
	if isDev(cfg) {
		cfg.Logger.Warn("INSECURE: mesh uses a --dev cluster CA derived from a shared string; anyone who knows it can join")
	}
	cfg.Logger.Info("mesh listening", "addr", udp.LocalAddr().String(), "node_id", e.id.String())
	e.wg.Add(1)
	go e.acceptLoop()
	// Cancelling the parent context is a Close.
	e.stopAfter = context.AfterFunc(ctx, func() { e.Close() })
	return e, nil
}

// ID is this node's id.
func (e *Endpoint) ID() NodeID { return e.id }

// Addr is the bound UDP address (useful with port 0).
func (e *Endpoint) Addr() net.Addr { return e.udp.LocalAddr() }

// Routes is the endpoint's routing table (origin → node), which Deliver
// helpers consult and update on "moved" answers.
func (e *Endpoint) Routes() *Routes { return e.routes }

// Handle registers h for subprotocol sub, replacing any earlier handler.
// Register before peers may call; calls for an unregistered subprotocol get
// ErrUnknownSubprotocol.
func (e *Endpoint) Handle(sub string, h StreamHandler) {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	if h == nil {
		delete(e.handlers, sub)
		return
	}
	e.handlers[sub] = h
}

func isDev(cfg Config) bool { return nodekey.IsDevCA(cfg.Credentials.CA) }

func (e *Endpoint) handler(sub string) StreamHandler {
	e.hmu.RLock()
	defer e.hmu.RUnlock()
	return e.handlers[sub]
}

// Close closes every connection (telling peers we are shutting down, so
// their calls fail fast instead of timing out), stops accepting, and waits
// for handlers to return. Handlers see their context cancelled.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.stopAfter()
		e.pmu.Lock()
		e.closed = true
		var conns []*quic.Conn
		for c := range e.inbound {
			conns = append(conns, c)
		}
		for _, pc := range e.peers {
			if pc.conn != nil {
				conns = append(conns, pc.conn)
			}
		}
		e.pmu.Unlock()
		e.cancel()
		for _, c := range conns {
			_ = c.CloseWithError(appCodeShutdown, "shutting down")
		}
		err := e.ln.Close()
		if terr := e.tr.Close(); err == nil {
			err = terr
		}
		e.udp.Close()
		e.wg.Wait()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		e.closeErr = err
	})
	return e.closeErr
}
