package driver

import (
	"runtime"
	"time"
)

// DefaultMaxFrozen is how many daemons a node keeps frozen for migrations
// at once unless Config.MaxFrozen says otherwise: one per CPU the Go
// runtime uses, at least 2 (one can then freeze while another hands over).
func DefaultMaxFrozen() int { return max(2, runtime.GOMAXPROCS(0)) }

// Freeze admission. A daemon's pause runs from its freeze to the target's
// confirmation, and all that time its migration competes for the CPU with
// every other migration on the node: a hundred small moves in flight made
// a large daemon's pause several times longer than alone. So a migration
// waits for one of MaxFrozen slots before it freezes, its daemon still
// serving events meanwhile, and gives the slot back when its source is
// done. The wait is not pause; it only orders the freezes.

func newFrozenSlots(limit int) chan struct{} {
	if limit < 0 {
		return nil
	}
	return make(chan struct{}, max(limit, 1))
}

// acquireFrozen waits for a freeze slot for r's source. It gives up (false)
// when the source machine ended meanwhile (aborted while waiting) or the
// migrator closes. Called on r's worker, without m.mu.
func (m *Migrator) acquireFrozen(r *run) bool {
	if m.frozen == nil {
		return true
	}
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case m.frozen <- struct{}{}:
			m.mu.Lock()
			r.frozenSlot = true
			m.mu.Unlock()
			return true
		case <-m.stop:
			return false
		case <-check.C:
			m.mu.Lock()
			done, _ := r.src.Result()
			m.mu.Unlock()
			if done {
				return false
			}
		}
	}
}

// releaseFrozenLocked gives r's slot back, once. Caller holds m.mu.
func (m *Migrator) releaseFrozenLocked(r *run) {
	if r.frozenSlot {
		r.frozenSlot = false
		<-m.frozen
	}
}
