package migrator

import (
	"context"
	"sync"
	"time"
)

// peerQueue sends frames to one peer in order from its own goroutine, so the
// migrator never blocks on the network while holding its lock, and runs
// forwarded deliveries to that peer in arrival order.
type peerQueue struct {
	m    *Migrator
	to   NodeID
	mu   sync.Mutex
	cond *sync.Cond
	q    []func()
	shut bool
	done chan struct{}
	// queued: snapshot chunks waiting in q (pushChunk).
	queued map[chunkKey]bool
}

// peer returns the queue of a peer; caller holds m.mu.
func (m *Migrator) peer(to NodeID) *peerQueue {
	if m.closed {
		return closedQueue()
	}
	p := m.peers[to]
	if p == nil {
		p = &peerQueue{m: m, to: to, done: make(chan struct{})}
		p.cond = sync.NewCond(&p.mu)
		m.peers[to] = p
		go p.run()
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
		p = &peerQueue{m: m, to: to, done: make(chan struct{})}
		p.cond = sync.NewCond(&p.mu)
		m.peers[key] = p
		go p.run()
	}
	return p
}

func (p *peerQueue) push(frame []byte) { p.enqueue(func() { p.send(frame) }) }

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
	if p.queued[k] {
		p.mu.Unlock()
		return
	}
	if p.queued == nil {
		p.queued = make(map[chunkKey]bool)
	}
	p.queued[k] = true
	p.mu.Unlock()
	p.enqueue(func() {
		p.mu.Lock()
		delete(p.queued, k)
		p.mu.Unlock()
		p.send(frame)
	})
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
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *peerQueue) forward(f func()) { p.enqueue(f) }

func (p *peerQueue) enqueue(f func()) {
	p.mu.Lock()
	if !p.shut {
		p.q = append(p.q, f)
		p.cond.Signal()
	}
	p.mu.Unlock()
}

func (p *peerQueue) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.q) == 0 && !p.shut {
			p.cond.Wait()
		}
		if p.shut {
			p.mu.Unlock()
			return
		}
		f := p.q[0]
		// Cleared, not only sliced off: the backing array would otherwise
		// keep every sent frame (a whole base snapshot's chunks) alive.
		p.q[0] = nil
		p.q = p.q[1:]
		if len(p.q) == 0 {
			p.q = nil
		}
		p.mu.Unlock()
		f()
	}
}

func (p *peerQueue) close() {
	p.mu.Lock()
	p.shut = true
	p.cond.Signal()
	p.mu.Unlock()
	<-p.done
}

// closedQueue drops everything: after Close nothing is sent.
func closedQueue() *peerQueue {
	p := &peerQueue{shut: true, done: make(chan struct{})}
	close(p.done)
	return p
}
