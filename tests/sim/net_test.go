package sim

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
)

// Errors a simulated call can end with. They stand for what the QUIC
// transport reports: errNotDelivered when the request surely never reached
// the peer (no connection, partition), errLost when it may have (the answer
// went missing), so only the first may be retried blindly.
var (
	errNotDelivered = errors.New("sim: not delivered")
	errLost         = errors.New("sim: answer lost")
	errNotHosted    = errors.New("sim: daemon not hosted here")
	errDuplicate    = errors.New("sim: duplicate (already applied)")
)

// movedError is the "moved" answer of a node that gave the daemon away.
type movedError struct{ to int }

func (e *movedError) Error() string { return fmt.Sprintf("sim: daemon moved to n%d", e.to) }

type msgKind uint8

const (
	kindFrame msgKind = iota // a migration frame (one-way, ordered per link)
	kindReq                  // a call: deliver, fetch module, lookup
	kindResp                 // its answer
)

func (k msgKind) String() string {
	return [...]string{"frame", "req", "resp"}[k]
}

// request is one call between nodes.
type request struct {
	op     string // "deliver", "fetch", "lookup"
	origin uint64
	ev     engine.Event
	digest string
}

// response is a call's answer; errors are values because the network is in
// process, but only the classes the real transport carries survive (see
// flatten).
type response struct {
	outs   []engine.Output
	module []byte
	hosted bool
	err    error
}

// message is one unit on the simulated network.
type message struct {
	kind     msgKind
	from, to int
	fromInc  int // the sender's incarnation: a crash drops what it had in flight
	frame    []byte
	call     uint64
	req      request
	resp     response
	seq      uint64 // network-wide send order
	at       time.Time
	// key orders calls on their link by content, not by which goroutine
	// got the lock first: goroutines woken at one instant push in any
	// order, and the step's pick must not depend on it.
	key string
}

// link is one direction between two nodes, for one class of traffic:
// migration frames share one ordered stream, calls ride streams of their
// own and may overtake each other.
type link struct {
	from, to int
	calls    bool
}

// call is a caller waiting for an answer.
type call struct {
	ch      chan response
	from    int
	fromInc int
}

// network holds every message in flight; nothing moves unless the
// simulator delivers it. Caller of every method except the Mesh side holds
// s.mu.
type network struct {
	links   map[link][]*message
	calls   map[uint64]*call
	nextID  uint64
	nextSeq uint64
	cut     map[int]bool // partitioned nodes
	// counts of messages sent, by op, for the scale report
	sent map[string]int
}

func newNetwork() *network {
	return &network{links: map[link][]*message{}, calls: map[uint64]*call{}, cut: map[int]bool{}, sent: map[string]int{}}
}

func (nw *network) severed(a, b int) bool { return nw.cut[a] != nw.cut[b] }

func (nw *network) push(m *message) {
	switch m.kind {
	case kindFrame:
		nw.sent["frame"]++
	case kindReq:
		nw.sent["req:"+m.req.op]++
	case kindResp:
		nw.sent["resp:"+m.req.op]++
	}
	nw.nextSeq++
	m.seq = nw.nextSeq
	m.at = time.Now()
	l := link{m.from, m.to, m.kind != kindFrame}
	q := nw.links[l]
	if !l.calls {
		nw.links[l] = append(q, m)
		return
	}
	i, _ := slices.BinarySearchFunc(q, m.key, func(x *message, k string) int { return strings.Compare(x.key, k) })
	for i < len(q) && q[i].key == m.key {
		i++
	}
	nw.links[l] = slices.Insert(q, i, m)
}

func (r request) key() string {
	return fmt.Sprintf("%s|%016x|%x|%d|%s", r.op, r.origin, r.ev.Sender, r.ev.Seq, r.digest)
}

// busy lists the links with messages, in a fixed order.
func (nw *network) busy() []link {
	var ls []link
	for l, q := range nw.links {
		if len(q) > 0 {
			ls = append(ls, l)
		}
	}
	slices.SortFunc(ls, func(a, b link) int {
		if a.from != b.from {
			return a.from - b.from
		}
		if a.to != b.to {
			return a.to - b.to
		}
		if a.calls == b.calls {
			return 0
		}
		if a.calls {
			return 1
		}
		return -1
	})
	return ls
}

func (nw *network) pending() int {
	n := 0
	for _, q := range nw.links {
		n += len(q)
	}
	return n
}

// oldest is when the longest-waiting message was sent (zero: none).
func (nw *network) oldest() time.Time {
	var t time.Time
	for _, q := range nw.links {
		for _, m := range q {
			if t.IsZero() || m.at.Before(t) {
				t = m.at
			}
		}
	}
	return t
}

// take removes the i-th message of a link.
func (nw *network) take(l link, i int) *message {
	q := nw.links[l]
	m := q[i]
	nw.links[l] = append(q[:i:i], q[i+1:]...)
	return m
}

// simMesh is one node incarnation's driver.Mesh: frames and calls go into
// the simulated network instead of QUIC.
type simMesh struct {
	n   *node
	inc int
}

var _ driver.Mesh = (*simMesh)(nil)

func (m *simMesh) Self() driver.NodeID { return nodeID(m.n.idx) }

func (m *simMesh) Send(_ context.Context, to driver.NodeID, frame []byte) error {
	t, err := parseNode(to)
	if err != nil {
		return err
	}
	s := m.n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.n.inc != m.inc {
		return driver.ErrClosed
	}
	if s.net.severed(m.n.idx, t) {
		return errNotDelivered
	}
	s.net.push(&message{kind: kindFrame, from: m.n.idx, to: t, fromInc: m.inc, frame: append([]byte(nil), frame...)})
	return nil
}

func (m *simMesh) FetchModule(ctx context.Context, from driver.NodeID, digest string) ([]byte, error) {
	f, err := parseNode(from)
	if err != nil {
		return nil, err
	}
	r := m.n.s.rpc(ctx, m.n, m.inc, f, request{op: "fetch", digest: digest})
	return r.module, r.err
}

func (m *simMesh) StaticKey(node driver.NodeID) (*ecdh.PublicKey, error) {
	i, err := parseNode(node)
	if err != nil {
		return nil, err
	}
	return m.n.s.nodes[i].static.PublicKey(), nil
}

// Forward is an ordinary remote delivery, with the transport's error
// classes: not delivered (safe to retry), duplicate, anything else.
func (m *simMesh) Forward(ctx context.Context, to driver.NodeID, origin uint64, ev engine.Event) ([]engine.Output, error) {
	t, err := parseNode(to)
	if err != nil {
		return nil, err
	}
	r := m.n.s.rpc(ctx, m.n, m.inc, t, request{op: "deliver", origin: origin, ev: ev})
	switch {
	case r.err == nil:
		return r.outs, nil
	case errors.Is(r.err, errNotDelivered):
		return nil, fmt.Errorf("%w: %w", driver.ErrNotDelivered, r.err)
	case errors.Is(r.err, errDuplicate):
		return nil, fmt.Errorf("%w: answered by %s", engine.ErrDuplicateEvent, to)
	}
	return nil, r.err
}

func (m *simMesh) FlipRoute(origin uint64, to driver.NodeID) {
	t, err := parseNode(to)
	if err != nil {
		return
	}
	s := m.n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.n.inc != m.inc {
		return
	}
	m.n.routes[origin] = t
	m.n.moved[origin] = t
}

func (m *simMesh) GoLive(origin uint64) {
	s := m.n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.n.inc != m.inc {
		return
	}
	m.n.routes[origin] = m.n.idx
	delete(m.n.moved, origin)
}

func nodeID(i int) driver.NodeID { return driver.NodeID(fmt.Sprintf("n%d", i)) }

func parseNode(id driver.NodeID) (int, error) {
	var i int
	if _, err := fmt.Sscanf(string(id), "n%d", &i); err != nil {
		return 0, fmt.Errorf("sim: bad node id %q", id)
	}
	return i, nil
}

// flatten keeps what a real answer carries across the wire: the classes
// the transport encodes, everything else as text.
func flatten(err error) error {
	var me *movedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return me
	case errors.Is(err, errNotHosted):
		return errNotHosted
	case errors.Is(err, engine.ErrDuplicateEvent):
		return errDuplicate
	}
	return errors.New(err.Error())
}
