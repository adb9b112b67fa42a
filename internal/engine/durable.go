package engine

import (
	"context"
	"errors"
	"fmt"
)

// InputJournal receives every daemon's inputs so that an embedder can make
// them durable (the node's write-ahead journal) and replay them after a
// crash with Daemon.Redo. Its methods are called with the daemon's lock
// held and must only copy into memory: no disk or network I/O.
type InputJournal interface {
	// Begin starts a new history of a daemon at inputSeq: it is called once
	// when a daemon becomes visible in the runtime (spawn, restore from a
	// snapshot, arrival by migration, recovery). The returned incarnation
	// names that history in later Record calls; records of an older
	// incarnation of the same origin are superseded.
	Begin(origin, inputSeq uint64) (incarnation uint64)
	// Record journals one committed event: inputSeq is the daemon's input
	// sequence after the event; rec holds the clock readings and random
	// bytes the guest consumed, in order. The slices are only valid during
	// the call.
	Record(incarnation, origin, inputSeq uint64, ev *Event, rec []byte)
}

// ErrRedoDiverged: a journaled event replayed with its recorded clock and
// random bytes did not consume exactly those readings, so the guest is not
// deterministic given its inputs; the daemon is left as it was before the
// event.
var ErrRedoDiverged = errors.New("host: redo of a journaled event diverged")

// ErrDuplicateEvent: an exactly-once event (Event.Once) whose sender
// sequence the daemon already applied; nothing ran. For the sender this is
// an acknowledgement: the event is applied, once.
var ErrDuplicateEvent = errors.New("host: event already applied")

// ErrBadEvent: an event the host cannot take as given (an exactly-once
// event without a sender).
var ErrBadEvent = errors.New("host: malformed event")

// duplicateLocked refuses an exactly-once event the horizon already holds.
func (d *Daemon) duplicateLocked(ev *Event) error {
	if !ev.Once {
		return nil
	}
	if ev.Sender == 0 {
		return fmt.Errorf("%w: an exactly-once event needs a non-zero sender", ErrBadEvent)
	}
	if last, ok := d.horizon.Get(ev.Sender); ok && ev.Seq <= last {
		return fmt.Errorf("%w: sender %016x event %d (latest applied %d)", ErrDuplicateEvent, ev.Sender, ev.Seq, last)
	}
	return nil
}

// Incarnation is the journal incarnation the daemon's history runs under
// (0 without a journal).
func (d *Daemon) Incarnation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.incarnation
}

// beginJournal is called by register just before the daemon is published.
func (d *Daemon) beginJournal() {
	j := d.rt.cfg.Journal
	if j == nil {
		return
	}
	d.mu.Lock()
	d.incarnation = j.Begin(d.origin, d.inputSeq)
	d.mu.Unlock()
}

// journalLocked hands a committed event to the journal.
func (d *Daemon) journalLocked(ev *Event, rec []byte) {
	if j := d.rt.cfg.Journal; j != nil {
		// The interface call would make every caller's event escape to
		// the heap (one allocation per event); a copy in the daemon, valid
		// during the call as Record's contract says, does not.
		d.recordEv = *ev
		j.Record(d.incarnation, d.origin, d.inputSeq, &d.recordEv, rec)
		d.recordEv = Event{}
	}
}

// Redo applies an event that was journaled before a crash, feeding the
// guest exactly the clock readings and random bytes recorded with it, so
// the daemon reaches the state (and chain) it had acknowledged. It bypasses
// any interceptor. The event is journaled again under the daemon's current
// incarnation, so a second crash still finds it. rec is not retained.
func (d *Daemon) Redo(ctx context.Context, ev Event, rec []byte) ([]Output, error) {
	var out Outputs
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked(); err != nil {
		return nil, err
	}
	if d.journal.pending {
		d.checkpointLocked()
	}
	in := d.inst
	live := in.rec
	// A private recorder: the live one's buffer must never alias rec.
	in.rec = &recorder{replaying: true, buf: rec}
	in.out = &out
	in.resetSends()
	err := in.process(ctx, &ev)
	in.out = nil
	replayed := in.rec
	in.rec = live
	live.reset()
	if err == nil && (replayed.diverged || replayed.pos != len(rec)) {
		err = fmt.Errorf("%w: event %d of daemon %016x consumed %d of %d recorded bytes",
			ErrRedoDiverged, d.inputSeq+1, d.origin, replayed.pos, len(rec))
	}
	if err != nil {
		ee := d.rollbackLocked(ctx, err)
		if errors.Is(err, ErrRedoDiverged) {
			return nil, err
		}
		return nil, ee
	}
	out.materialize()
	d.commitLocked(&ev, &out, rec)
	return out.Items, nil
}
