package driver

import (
	"fmt"

	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// DefaultInboundBudget is the node-wide memory that inbound migrations may
// hold before their daemons are live, when Config.InboundBudget is zero.
const DefaultInboundBudget = 1 << 30

// inbound is the node-wide budget for what inbound migrations hold before
// their daemon is live here: the protocol's snapshot reassembly (each
// target machine reassembles its own snapshot) and pre-copied bases
// (reassembled, then staged as instances). Each target machine caps its
// own reassembly, which bounds one migration but not how many run at once;
// this bounds their sum. Caller holds m.mu for every method.
type inbound struct {
	limit uint64
	used  uint64
	by    map[inboundKey]uint64
}

type inboundKey struct {
	id  uint64
	pre bool // a pre-copied base rather than the protocol's transfer
}

func newInbound(limit uint64) *inbound {
	return &inbound{limit: limit, by: make(map[inboundKey]uint64)}
}

// reserve sets k's reservation to n bytes if the budget allows it; on
// refusal k holds nothing (its earlier attempt's memory is gone too).
func (b *inbound) reserve(k inboundKey, n uint64) bool {
	others := b.used - b.by[k]
	if others+n > b.limit {
		b.release(k)
		return false
	}
	b.used = others + n
	b.by[k] = n
	return true
}

func (b *inbound) release(k inboundKey) {
	b.used -= b.by[k]
	delete(b.by, k)
}

// admitBytes reserves a new inbound transfer of n bytes and says how the
// target must answer: ready, not ready (retriable: the source backs off
// and tries again once other migrations released memory), or a failure
// when n alone is over the whole budget, which waiting cannot fix.
func (m *Migrator) admitBytes(id, n uint64) (ready bool, err error) {
	k := inboundKey{id: id}
	if n > m.inbound.limit {
		m.inbound.release(k)
		return true, &protocol.Failure{Reason: wire.ReasonStateFailed,
			Text: fmt.Sprintf("snapshot of %d bytes is over this node's inbound migration budget of %d bytes", n, m.inbound.limit)}
	}
	if !m.inbound.reserve(k, n) {
		m.cfg.Logger.Info("inbound migration deferred: budget in use", "migration", logID(id), "bytes", n,
			"used", m.inbound.used, "budget", m.inbound.limit)
		return false, nil
	}
	return true, nil
}

// Resources is what the migrator holds now; /metrics and tests read it.
type Resources struct {
	Runs          int    // migrations with state on this node, running or lingering
	Handles       int    // orchestrated migrations still looked up by daemon
	Staged        int    // pre-copied bases staged here, waiting for their migration
	PreCopyIn     int    // pre-copied bases being received here
	Bases         int    // source side: runs still holding a pre-copy base snapshot
	InboundBytes  uint64 // node-wide inbound budget in use (transfers and bases)
	StagedBytes   uint64 // the part of InboundBytes held by pre-copied bases
	InboundBudget uint64
}

// Resources reports what the migrator holds now.
func (m *Migrator) Resources() Resources {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := Resources{Runs: len(m.runs), Handles: len(m.byOrigin), Staged: m.stagedCount(),
		InboundBytes: m.inbound.used, InboundBudget: m.inbound.limit}
	r.PreCopyIn = len(m.staged) - r.Staged
	for k, n := range m.inbound.by {
		if k.pre {
			r.StagedBytes += n
		}
	}
	for _, x := range m.runs {
		if x.base != nil {
			r.Bases++
		}
	}
	return r
}

// finishRun drops what a migration no longer needs once every role of it
// on this node has ended: the pre-copy base (a whole snapshot of the
// daemon), the daemons it pointed at, and its inbound reservations. A
// retried message is still answered by the machines, which stay until
// forgetRun. Caller holds m.mu.
func (m *Migrator) finishRun(r *run) {
	r.base = nil
	m.releaseFrozenLocked(r)
	m.inbound.release(inboundKey{id: r.id})
	m.endLanes(r.id)
}

// forgetRun removes a finished migration after its linger. Caller holds
// m.mu.
func (m *Migrator) forgetRun(id uint64, r *run) {
	m.finishRun(r)
	delete(m.runs, id)
	if h := r.handle; h != nil && m.byOrigin[h.origin] == h {
		delete(m.byOrigin, h.origin)
	}
	// A handle the caller still holds keeps the run reachable: let go of
	// the daemons and senders so they are not kept with it.
	r.dropRefs()
}
