package driver

import (
	"fmt"

	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// claimStart marks origin as being started here, or refuses it when a
// migration of it already runs through this node: orchestrated here (a
// Handle not finished, or another start still pre-copying), or with this
// node as its source for another orchestrator. A claim lasts until
// releaseStart; by then the Handle is in byOrigin.
func (m *Migrator) claimStart(origin uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.starting[origin]; ok {
		return alreadyMigrating(origin, "is being started here")
	}
	if h := m.byOrigin[origin]; h != nil && !h.finished() {
		return alreadyMigrating(origin, fmt.Sprintf("is in migration %016x", h.r.id))
	}
	for _, r := range m.runs {
		if r.src == nil || r.srcPlan.Origin != origin {
			continue
		}
		if done, _ := r.src.Result(); !done {
			return alreadyMigrating(origin, fmt.Sprintf("is in migration %016x from this node", r.id))
		}
	}
	m.starting[origin] = struct{}{}
	return nil
}

func (m *Migrator) releaseStart(origin uint64) {
	m.mu.Lock()
	delete(m.starting, origin)
	m.mu.Unlock()
}

// alreadyMigrating matches both ErrAlreadyMigrating and the protocol's
// AlreadyMigrating failure, which a source busy with another orchestrator's
// migration answers: a caller handles a refusal here and there alike.
func alreadyMigrating(origin uint64, why string) error {
	return fmt.Errorf("%w: %w", ErrAlreadyMigrating,
		&protocol.Failure{Reason: wire.ReasonAlreadyMigrating, Text: fmt.Sprintf("%016x %s", origin, why)})
}
