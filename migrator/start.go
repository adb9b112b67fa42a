package migrator

import "fmt"

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
		return fmt.Errorf("%w: %016x (being started)", ErrAlreadyMigrating, origin)
	}
	if h := m.byOrigin[origin]; h != nil && !h.finished() {
		return fmt.Errorf("%w: %016x", ErrAlreadyMigrating, origin)
	}
	for _, r := range m.runs {
		if r.src == nil || r.srcPlan.Origin != origin {
			continue
		}
		if done, _ := r.src.Result(); !done {
			return fmt.Errorf("%w: %016x (migration %016x from this node)", ErrAlreadyMigrating, origin, r.id)
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
