package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

// ErrWaitTimeout is returned by WaitTimeout when the migration did not end
// in time; the migration is aborted (SPEC R-M9).
var ErrWaitTimeout = errors.New("migrator: wait timed out; migration aborted")

// Handle follows one orchestrated migration.
type Handle struct {
	m       *Migrator
	r       *run
	origin  uint64
	started time.Time
	done    chan struct{}
	err     error
	ended   time.Time
}

// Phase is the orchestrator's current phase.
func (h *Handle) Phase() protocol.Phase {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.r.orch.Phase()
}

// Attempt is the current attempt number (1-based).
func (h *Handle) Attempt() int {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.r.orch.Attempt()
}

// ID is the migration id.
func (h *Handle) ID() uint64 { return h.r.id }

// Origin is the migrating daemon.
func (h *Handle) Origin() uint64 { return h.origin }

// Done is closed when the migration has ended.
func (h *Handle) Done() <-chan struct{} { return h.done }

func (h *Handle) finished() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// finish records the result; caller holds m.mu.
func (h *Handle) finish(err error) {
	if h.finished() {
		return
	}
	h.err = err
	h.ended = time.Now()
	close(h.done)
}

// Wait blocks until the migration ends and returns its result: nil, or a
// *protocol.Failure whose Reason says why.
func (h *Handle) Wait(ctx context.Context) error {
	select {
	case <-h.done:
		return h.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitTimeout waits at most d; on timeout it cancels the migration and
// returns ErrWaitTimeout.
func (h *Handle) WaitTimeout(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := h.Wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) && !h.finished() {
		if cerr := h.Cancel(); cerr != nil {
			// Past cutover nothing can be undone: the handover may still
			// complete, so this is not a failure to report as final.
			return fmt.Errorf("%w after %s, and it cannot be aborted: %w", ErrWaitTimeout, d, cerr)
		}
		return fmt.Errorf("%w after %s", ErrWaitTimeout, d)
	}
	return err
}

// Cancel aborts the migration if it has not passed the point of no return.
func (h *Handle) Cancel() error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	out, err := h.r.orch.Cancel(time.Now())
	h.m.apply(h.r, roleOrch, out)
	return err
}

// Duration is how long the migration took (so far, if still running).
func (h *Handle) Duration() time.Duration {
	if h.finished() {
		return h.ended.Sub(h.started)
	}
	return time.Since(h.started)
}

// Stats returns what the source recorded; complete only when this node is
// also the source.
func (h *Handle) Stats() Stats {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.r.stats
}
