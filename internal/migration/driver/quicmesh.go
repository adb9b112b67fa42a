package driver

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// SubMigration is the transport subprotocol that carries migration frames:
// one stream per migration, peer and direction, so a migration's frames
// stay in order and QUIC's flow control holds back a migration whose
// receiver falls behind without holding back the others.
const SubMigration = "wasmesh/migration/1"

// QUICMesh adapts the QUIC transport to Mesh. The node supplies what only it
// knows: peers' verified static keys and how routes are announced.
type QUICMesh struct {
	EP *meshquic.Endpoint
	// StaticKeyOf returns a peer's X25519 key (from membership, verified).
	StaticKeyOf func(node NodeID) (*ecdh.PublicKey, error)
	// OnFlip and OnLive update the node's routing; nil means only the
	// transport's route table is updated.
	OnFlip func(origin uint64, to NodeID)
	OnLive func(origin uint64)

	mu      sync.Mutex // guards streams, life and cancel, never held over I/O
	streams map[streamKey]*peerStream
	life    context.Context // streams live until Close, not per send
	cancel  context.CancelFunc
	closed  bool

	epochMu sync.Mutex
	epoch   uint64

	// recvHook, set by tests, sees every frame before Receive does, on
	// the goroutine that reads the frame's stream.
	recvHook atomic.Pointer[func(from NodeID, frame []byte)]
}

// streamKey names the stream of one migration to one peer; id 0 is the
// stream of frames that name no migration.
type streamKey struct {
	to NodeID
	id uint64
}

// peerStream serialises the frames of one migration to one peer; its lock
// is held over the network write, so a blocked stream delays only its own
// migration's frames.
type peerStream struct {
	mu     sync.Mutex
	s      *meshquic.Stream
	cancel context.CancelFunc // ends the context s is bound to
	dead   bool               // removed by CloseStream: a send looks the key up again
}

// drop forgets the stream, closing it gracefully or resetting it; caller
// holds ps.mu.
func (ps *peerStream) drop(reset bool) {
	if ps.s == nil {
		return
	}
	if reset {
		ps.s.Abort()
	} else {
		_ = ps.s.Close()
	}
	ps.cancel()
	ps.s, ps.cancel = nil, nil
}

// Close ends the migration streams this side opened.
func (q *QUICMesh) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.cancel != nil {
		q.cancel()
	}
	for _, ps := range q.streams {
		ps.mu.Lock()
		ps.drop(true)
		ps.mu.Unlock()
	}
	q.streams = nil
}

// Serve installs the migration stream handler that feeds m.
func (q *QUICMesh) Serve(m *Migrator) {
	q.EP.Handle(SubMigration, func(ctx context.Context, s *meshquic.Stream) error {
		from := NodeID(s.Peer().String())
		var buf []byte
		for {
			b, err := s.RecvBytes(buf[:0])
			if err != nil {
				return nil // peer closed or stream broke: it reopens on next send
			}
			buf = b
			if h := q.recvHook.Load(); h != nil {
				(*h)(from, b)
			}
			if err := m.Receive(from, b); err != nil {
				m.cfg.Logger.Debug("migration frame refused", "peer", from, "err", err)
			}
		}
	})
}

// Self implements Mesh.
func (q *QUICMesh) Self() NodeID { return NodeID(q.EP.ID().String()) }

// Send implements Mesh: frames go over one stream per migration and peer
// (the migration named in the frame), opened on first use and reopened
// after a failure.
func (q *QUICMesh) Send(ctx context.Context, to NodeID, frame []byte) error {
	id, err := nodekey.ParseNodeID(string(to))
	if err != nil {
		return err
	}
	key := streamKey{to: to, id: frameLane(frame)}
	for {
		ps, life, err := q.stream(key)
		if err != nil {
			return err
		}
		ps.mu.Lock()
		if ps.dead {
			ps.mu.Unlock()
			continue
		}
		err = q.write(ctx, ps, life, meshquic.PeerID(id), frame)
		ps.mu.Unlock()
		return err
	}
}

func (q *QUICMesh) stream(key streamKey) (*peerStream, context.Context, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, nil, ErrClosed
	}
	if q.streams == nil {
		q.streams = make(map[streamKey]*peerStream)
		q.life, q.cancel = context.WithCancel(context.Background())
	}
	ps := q.streams[key]
	if ps == nil {
		ps = &peerStream{}
		q.streams[key] = ps
	}
	return ps, q.life, nil
}

// write sends one frame on ps; caller holds ps.mu.
func (q *QUICMesh) write(ctx context.Context, ps *peerStream, life context.Context, id meshquic.Peer, frame []byte) error {
	if ps.s == nil {
		// The stream outlives this send: it is bound to the mesh's life.
		// Opening it waits no longer than the send may: a peer with no
		// stream to spare (its limit on concurrent streams reached) must
		// not hold this migration's frames forever.
		sctx, cancel := context.WithCancel(life)
		stop := context.AfterFunc(ctx, cancel)
		s, err := q.EP.OpenStream(sctx, id, SubMigration)
		if !stop() {
			if err == nil {
				s.Abort()
			}
			cancel()
			return fmt.Errorf("migrator: opening a migration stream: %w", context.Cause(ctx))
		}
		if err != nil {
			cancel()
			return err
		}
		ps.s, ps.cancel = s, cancel
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ps.s.SetDeadline(dl)
	}
	err := ps.s.SendBytes(frame)
	_ = ps.s.SetDeadline(time.Time{})
	if err != nil {
		ps.drop(true)
		return err
	}
	return nil
}

// CloseStream implements StreamCloser: the stream of migration id to a
// peer ends after the frames written to it (a graceful close, so they
// still arrive); a later frame opens a new one.
func (q *QUICMesh) CloseStream(to NodeID, id uint64) {
	key := streamKey{to: to, id: id}
	q.mu.Lock()
	ps := q.streams[key]
	delete(q.streams, key)
	q.mu.Unlock()
	if ps == nil {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.dead = true
	ps.drop(false)
}

// FetchModule implements Mesh.
func (q *QUICMesh) FetchModule(ctx context.Context, from NodeID, digest string) ([]byte, error) {
	id, err := nodekey.ParseNodeID(string(from))
	if err != nil {
		return nil, err
	}
	return q.EP.FetchModule(ctx, meshquic.PeerID(id), digest)
}

// StaticKey implements Mesh.
func (q *QUICMesh) StaticKey(node NodeID) (*ecdh.PublicKey, error) {
	if q.StaticKeyOf == nil {
		return nil, fmt.Errorf("migrator: no static key directory for %s", node)
	}
	return q.StaticKeyOf(node)
}

// Forward implements Mesh with an ordinary remote delivery.
func (q *QUICMesh) Forward(ctx context.Context, to NodeID, origin uint64, ev engine.Event) ([]engine.Output, error) {
	id, err := nodekey.ParseNodeID(string(to))
	if err != nil {
		return nil, err
	}
	resp, err := q.EP.RemoteDeliver(ctx, id, meshquic.DeliverRequest{Event: meshquic.Event{Target: origin, Sender: ev.Sender, Seq: ev.Seq, Payload: ev.Payload, Once: ev.Once}})
	if errors.Is(err, meshquic.ErrPeerUnavailable) || errors.Is(err, meshquic.ErrUnknownPeer) {
		return nil, fmt.Errorf("%w: %w", ErrNotDelivered, err)
	}
	if err != nil {
		return nil, err
	}
	if resp.Duplicate {
		return nil, fmt.Errorf("%w: answered by %s", engine.ErrDuplicateEvent, to)
	}
	return OutputsFromWire(resp.Outputs)
}

// OutputsFromWire decodes transport outputs into host outputs.
func OutputsFromWire(ws []meshquic.Output) ([]engine.Output, error) {
	outs := make([]engine.Output, len(ws))
	for i, o := range ws {
		l, err := chain.DecodeLink(o.Link)
		if err != nil {
			return nil, err
		}
		outs[i] = engine.Output{Link: l, Payload: o.Payload}
	}
	return outs, nil
}

// FlipRoute implements Mesh: a newer epoch than any announcement so far
// points the route at the target, and strays get "moved".
func (q *QUICMesh) FlipRoute(origin uint64, to NodeID) {
	if id, err := nodekey.ParseNodeID(string(to)); err == nil {
		r := q.EP.Routes()
		ep := q.nextEpoch(r, origin)
		r.Set(origin, id, ep)
		r.SetMoved(origin, id, ep)
	}
	if q.OnFlip != nil {
		q.OnFlip(origin, to)
	}
}

// GoLive implements Mesh.
func (q *QUICMesh) GoLive(origin uint64) {
	r := q.EP.Routes()
	r.Set(origin, q.EP.ID(), q.nextEpoch(r, origin))
	r.ClearMoved(origin)
	if q.OnLive != nil {
		q.OnLive(origin)
	}
}

func (q *QUICMesh) nextEpoch(r *meshquic.Routes, origin uint64) uint64 {
	q.epochMu.Lock()
	defer q.epochMu.Unlock()
	ep := q.epoch + 1
	if cur, ok := r.Lookup(origin); ok && cur.Epoch >= ep {
		ep = cur.Epoch + 1
	}
	q.epoch = ep
	return ep
}
