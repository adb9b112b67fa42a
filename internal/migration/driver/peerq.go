package driver

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// A peerQueue sends frames to one peer, so the migrator never blocks on the
// network while holding its lock. Each migration has a lane of its own in
// it: a queue and a goroutine that writes the lane's frames in order (and a
// Mesh such as QUICMesh gives each migration its own stream). A lane that
// waits on a slow or blocked stream holds back only its own migration; a
// single queue per peer let one migration's bulk snapshot delay every other
// migration's control messages to that peer.
//
// The forwarder of a peer is a peerQueue too, whose functions run in
// arrival order per lane: one lane per daemon (forwardOn), so a delivery
// that waits for one daemon's target to go live holds back no other's.
type peerQueue struct {
	m     *Migrator
	to    NodeID
	mu    sync.Mutex
	lanes map[uint64]*lane
	shut  bool
	stop  chan struct{} // closed by close: lanes stop and waiters give up
	wg    sync.WaitGroup
	// Lane timing, from the package defaults; a test may shorten them.
	idle, linger time.Duration
	forwards     bool // a forwarder: lanes are daemons, not streams
}

// laneBudget is how many bytes one lane may hold before pushWait makes
// its producer wait. push, which the state machines' output takes under
// the migrator's lock, cannot wait and is not held to it: what the
// machines emit is bounded by the migration's own snapshot and limits.
const laneBudget = 8 << 20

// A lane with nothing to send ends after laneIdle, or after laneLinger
// once its migration is done on this node (endLanes): a stream per
// finished migration left open would eat into the peer's limit on
// concurrent streams. A late frame opens a new lane.
const (
	laneIdle   = 5 * time.Second
	laneLinger = 250 * time.Millisecond
)

// lane is one migration's queue to a peer; guarded by its peerQueue's mu.
type lane struct {
	id    uint64
	q     []item
	bytes int
	ended bool // the migration is done here: end soon after draining
	// queued: snapshot chunks waiting in q (pushChunk).
	queued map[chunkKey]bool
	wake   chan struct{} // 1-buffered: work arrived or ended changed
	space  chan struct{} // 1-buffered: bytes went down (pushWait)
}

type item struct {
	frame []byte
	chunk *chunkKey // set for a deduplicated snapshot chunk
	f     func()    // a forwarded delivery (forwarder lanes)
}

// StreamCloser is implemented by a Mesh that carries each migration's
// frames to a peer on a stream of its own (QUICMesh): the migrator calls
// it once it has nothing more to send for migration id to that peer, so
// the stream can be closed after its last frame.
type StreamCloser interface {
	CloseStream(to NodeID, id uint64)
}

func newPeerQueue(m *Migrator, to NodeID) *peerQueue {
	return &peerQueue{m: m, to: to, lanes: make(map[uint64]*lane), stop: make(chan struct{}), idle: laneIdle, linger: laneLinger}
}

// peer returns the queue of a peer; caller holds m.mu.
func (m *Migrator) peer(to NodeID) *peerQueue {
	if m.closed {
		return closedQueue()
	}
	p := m.peers[to]
	if p == nil {
		p = newPeerQueue(m, to)
		m.peers[to] = p
	}
	return p
}

// forwarder returns the queue that runs forwarded deliveries to a peer in
// order. It is separate from the frame queue: a forwarded delivery waits
// until the target is live, which needs frames to keep flowing.
func (m *Migrator) forwarder(to NodeID) *peerQueue {
	if m.closed {
		return closedQueue()
	}
	key := to + "\x00forward"
	p := m.peers[key]
	if p == nil {
		p = newPeerQueue(m, to)
		p.forwards = true
		m.peers[key] = p
	}
	return p
}

// endLanes tells every lane of migration id that the migration is done on
// this node: each closes its stream once drained and lingered. Caller
// holds m.mu.
func (m *Migrator) endLanes(id uint64) {
	for _, p := range m.peers {
		if p.forwards {
			continue
		}
		p.mu.Lock()
		if l := p.lanes[id]; l != nil {
			l.ended = true
			signal(l.wake)
		}
		p.mu.Unlock()
	}
}

func (p *peerQueue) push(frame []byte) { p.enqueue(frameLane(frame), item{frame: frame}) }

// pushWait queues a frame like push, but first waits while the frame's
// lane holds laneBudget bytes or more: a producer that is not under the
// migrator's lock (a pre-copy base) then goes no faster than its stream.
func (p *peerQueue) pushWait(ctx context.Context, frame []byte) error {
	id := frameLane(frame)
	for {
		p.mu.Lock()
		if p.shut {
			p.mu.Unlock()
			return ErrClosed
		}
		l := p.laneLocked(id)
		if l.bytes < laneBudget {
			p.appendLocked(l, item{frame: frame})
			p.mu.Unlock()
			return nil
		}
		space := l.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.stop:
			return ErrClosed
		}
	}
}

// chunkKey names one chunk of one snapshot transfer.
type chunkKey struct {
	id, seq        uint64
	attempt, index uint32
}

// pushChunk queues a snapshot chunk unless the same chunk still waits in
// this queue. The source machine resends a whole snapshot when no answer
// came in time; on a slow link the first copy may still be queued here,
// and every copy would queue behind it, lengthening the very transfer the
// answer waits for. The stream is reliable: only a chunk that was written
// and then lost with a broken stream needs sending again, and that one is
// no longer queued.
func (p *peerQueue) pushChunk(k chunkKey, frame []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shut {
		return
	}
	l := p.laneLocked(k.id)
	if l.queued[k] {
		return
	}
	if l.queued == nil {
		l.queued = make(map[chunkKey]bool)
	}
	l.queued[k] = true
	p.appendLocked(l, item{frame: frame, chunk: &k})
}

// forwardOn runs f after the functions queued before it for the same
// daemon (origin), and independently of other daemons'.
func (p *peerQueue) forwardOn(origin uint64, f func()) { p.enqueue(origin, item{f: f}) }

func (p *peerQueue) enqueue(id uint64, it item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shut {
		p.appendLocked(p.laneLocked(id), it)
	}
}

// laneLocked returns the lane of migration id, starting it if needed;
// caller holds p.mu and has checked p.shut.
func (p *peerQueue) laneLocked(id uint64) *lane {
	l := p.lanes[id]
	if l == nil {
		l = &lane{id: id, wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
		p.lanes[id] = l
		p.wg.Add(1)
		go p.run(l)
	}
	return l
}

func (p *peerQueue) appendLocked(l *lane, it item) {
	l.q = append(l.q, it)
	l.bytes += len(it.frame)
	signal(l.wake)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *peerQueue) run(l *lane) {
	defer p.wg.Done()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		p.mu.Lock()
		if p.shut {
			p.mu.Unlock()
			return
		}
		if len(l.q) > 0 {
			it := l.q[0]
			// Cleared, not only sliced off: the backing array would
			// otherwise keep every sent frame (a whole base snapshot's
			// chunks) alive.
			l.q[0] = item{}
			l.q = l.q[1:]
			if len(l.q) == 0 {
				l.q = nil
			}
			l.bytes -= len(it.frame)
			if it.chunk != nil {
				delete(l.queued, *it.chunk)
			}
			signal(l.space)
			p.mu.Unlock()
			if it.f != nil {
				it.f()
			} else {
				p.send(it.frame)
			}
			continue
		}
		wait := p.idle
		if l.ended {
			wait = p.linger
		}
		p.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
		select {
		case <-l.wake:
			continue
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		if len(l.q) > 0 || p.shut {
			p.mu.Unlock()
			continue
		}
		// Removed under the lock that pushes take: a frame for this
		// migration from now on starts a new lane.
		delete(p.lanes, l.id)
		p.mu.Unlock()
		if c, ok := p.m.cfg.Mesh.(StreamCloser); ok && l.id != 0 && !p.forwards {
			c.CloseStream(p.to, l.id)
		}
		return
	}
}

func (p *peerQueue) send(frame []byte) {
	for try := 0; try < 3; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.m.cfg.Mesh.Send(ctx, p.to, frame)
		cancel()
		if err == nil {
			return
		}
		p.m.cfg.Logger.Debug("migration frame not sent", "peer", p.to, "err", err)
		// Lost frames are retransmitted by the state machines; a short
		// retry here only rides out a reconnect.
		select {
		case <-time.After(50 * time.Millisecond):
		case <-p.stop:
			return
		}
	}
}

func (p *peerQueue) close() {
	p.mu.Lock()
	if !p.shut {
		p.shut = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// closedQueue drops everything: after Close nothing is sent.
func closedQueue() *peerQueue {
	p := &peerQueue{shut: true, stop: make(chan struct{})}
	close(p.stop)
	return p
}

// frameLane is the migration a frame belongs to, which picks its lane and
// stream; 0 (never a migration id) for a frame it cannot tell, which then
// goes on a shared lane. Only the frame's prefix is read.
func frameLane(frame []byte) uint64 {
	if len(frame) == 0 {
		return 0
	}
	switch frame[0] {
	case frameOutputs, framePrecopyAck:
		// Both start with the migration id, u64 little endian.
		if len(frame) >= 9 {
			return binary.LittleEndian.Uint64(frame[1:9])
		}
		return 0
	case frameMessage, framePrecopy, framePrecopyRound:
		// A wire message: array [version, kind, id, attempt, ...].
		d := msgpack.GetDecoder()
		defer msgpack.PutDecoder(d)
		d.Reset(bytes.NewReader(frame[1:]))
		if n, err := d.DecodeArrayLen(); err != nil || n < 4 {
			return 0
		}
		for i := 0; i < 2; i++ {
			if _, err := d.DecodeUint64(); err != nil {
				return 0
			}
		}
		id, err := d.DecodeUint64()
		if err != nil {
			return 0
		}
		return id
	}
	return 0
}
