package driver

import (
	"context"
	"slices"

	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

// The migrator is a driver in the etcd-raft "Ready" style: a machine is
// stepped under m.mu, and its Output goes, in order, to the worker of its
// run, which performs it with m.mu released and feeds results back as
// inputs stepped under the lock again. Guest code, snapshots, store writes
// and network sends of one migration thus never hold up another one, the
// ticker, an interceptor or Receive.

// batch is one machine output queued for the worker, with what had to be
// read under the lock when the machine produced it.
type batch struct {
	who role
	out protocol.Output
	// stale: the senders waiting on this role when out gave up on them
	// (ResumeLocal at the source, Discard at the target). Later senders
	// belong to a newer attempt and are not touched.
	stale []*waiter
}

// enqueue appends a job to r's worker, starting it if it is idle. Caller
// holds m.mu. A closed migrator starts no new worker (Close waits for the
// running ones): what is left of its migrations is left to their timeouts.
func (m *Migrator) enqueue(r *run, job func()) {
	if !r.working && m.closed {
		return
	}
	if r.front {
		r.jobs = slices.Insert(r.jobs, r.ins, job)
		r.ins++
		return
	}
	r.jobs = append(r.jobs, job)
	if r.working {
		return
	}
	r.working = true
	m.wg.Add(1)
	go m.work(r)
}

// work runs r's jobs in order until none is left; one worker per run at a
// time, so the effects of one migration keep the order its machines gave.
func (m *Migrator) work(r *run) {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		if len(r.jobs) == 0 {
			r.working = false
			m.mu.Unlock()
			return
		}
		job := r.jobs[0]
		r.jobs[0] = nil
		r.jobs = r.jobs[1:]
		m.mu.Unlock()
		job()
	}
}

// barrier returns a channel closed once every job queued for r so far has
// run: a sender that comes after a machine finished waits there until the
// effects of the finish (resume, go-live) took place. Caller holds m.mu.
func (m *Migrator) barrier(r *run) <-chan struct{} {
	ch := make(chan struct{})
	if !r.working {
		close(ch)
		return ch
	}
	m.enqueue(r, func() { close(ch) })
	return ch
}

func waitFor(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apply queues a machine's output for r's worker. Caller holds m.mu.
func (m *Migrator) apply(r *run, who role, out protocol.Output) {
	if out.Empty() {
		return
	}
	m.cfg.Logger.Debug("migration step", "migration", logID(r.id), "role", who.String(), "messages", len(out.Messages), "effects", protocol.Effects(out.Effects))
	b := batch{who: who, out: out}
	for _, e := range out.Effects {
		switch e.(type) {
		case protocol.ResumeLocal:
			b.stale = waitersOf(r.srcW)
		case protocol.Discard:
			b.stale = waitersOf(r.tgtW)
		}
	}
	m.enqueue(r, func() { m.perform(r, b, b.steps()) })
}

func waitersOf(ws map[protocol.Token]*waiter) []*waiter {
	out := make([]*waiter, 0, len(ws))
	for _, w := range ws {
		out = append(out, w)
	}
	return out
}

// step is one message to send or one effect to perform.
type step struct {
	msg    protocol.Outbound
	effect protocol.Effect // nil: send msg
}

// steps orders a batch: messages, then effects — except that a target
// going live runs its effects first: the replayed events' outputs then
// travel ahead of the ActivateAck, and the node's adoption (record,
// module, checkpoint on disk) is durable before the source can learn of
// the handover and wipe its copy.
func (b batch) steps() []step {
	msgs := make([]step, len(b.out.Messages))
	for i, ob := range b.out.Messages {
		msgs[i] = step{msg: ob}
	}
	effs := make([]step, len(b.out.Effects))
	for i, e := range b.out.Effects {
		effs[i] = step{effect: e}
	}
	if b.who == roleTarget && goesLive(b.out.Effects) {
		return append(effs, msgs...)
	}
	return append(msgs, effs...)
}

// perform runs a batch's steps on the worker, off the lock. A message to
// this node is stepped into its machines right away, and what they output
// runs before the rest of this batch, which waits as a job behind it: the
// order a recursive dispatch would give (a source's handover effects come
// before the orchestrator's Done on the same node, so Wait returns once the
// daemon is released), without performing anything inside dispatch.
func (m *Migrator) perform(r *run, b batch, steps []step) {
	for i, st := range steps {
		if st.effect != nil {
			m.effect(r, b, st.effect)
			continue
		}
		if st.msg.To != m.self {
			m.send(r, st.msg)
			continue
		}
		rest := steps[i+1:]
		m.mu.Lock()
		r.front, r.ins = true, 0
		m.dispatch(m.self, st.msg.Msg)
		if len(rest) > 0 {
			m.enqueue(r, func() { m.perform(r, b, rest) })
		}
		r.front = false
		m.mu.Unlock()
		return
	}
}

// input steps a result into r's machine of role who, taking m.mu.
func (m *Migrator) input(r *run, who role, in protocol.Input) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.feed(r, who, in)
}
