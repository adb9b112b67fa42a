package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Daemon is one running instance of a kind with its own identity.
// Events are processed one at a time in arrival order (SPEC R-D6).
type Daemon struct {
	rt      *Runtime
	kind    *Kind
	variant *variant
	id      identity.Identity
	entity  [abi.EntityIDSize]byte
	origin  uint64
	idText  string // the origin in hex, formatted once: senders ask per event
	name    string
	limits  Limits
	created time.Time
	// kindName is the kind name the daemon was spawned as (under mu); it
	// travels in its snapshots so a target that knows the module only by
	// digest still shows it.
	kindName string
	// carried is the name and kind name the snapshot it was built from
	// carried; the node decides whether the name is free here.
	carried Carried
	// Events processed and outputs emitted are read off the input sequence
	// and the chain head, which move under mu with every committed event,
	// plus these offsets (under mu; zero unless a snapshot said otherwise).
	// So a snapshot's counters always match its state exactly.
	processedOff, emittedOff uint64

	mu      sync.Mutex // serialises events, snapshots and state changes
	inst    *instance
	state   daemonState
	failErr error

	head     chain.Link
	headHash [32]byte
	hasher   chain.Hasher
	horizon  *chain.Horizon
	inputSeq uint64
	snapSeq  uint64
	ledger   []snapshot.Subscription
	outbox   outbox
	journal  journal
	// incarnation names this history in the runtime's InputJournal.
	incarnation uint64

	scratch Outputs // replay outputs
	// recordEv is the event handed to the InputJournal (under mu).
	recordEv Event

	// Events processed and emitted are not counted here but read off the
	// input sequence and chain head (countsLocked): no atomic per event.
	errs, snapshots atomic.Uint64
	cpuNanos        atomic.Int64
	logsDropped     atomic.Uint64
	lastErr         atomic.Pointer[string]
	logs            logRing

	observers atomic.Pointer[[]*Observer]
	obsMu     sync.Mutex

	intercept atomic.Pointer[Interceptor]
}

// Interceptor takes over a daemon's incoming events while it migrates: the
// migration buffers them, forwards them, or applies them elsewhere, and
// answers the sender with the outputs once they exist.
type Interceptor func(ctx context.Context, ev Event) ([]Output, error)

// SetInterceptor routes every later Deliver through f (nil restores normal
// processing). An event already inside the daemon finishes first.
func (d *Daemon) SetInterceptor(f Interceptor) {
	if f == nil {
		d.intercept.Store(nil)
		return
	}
	d.intercept.Store(&f)
}

// FreezeAndSnapshot installs f and takes a snapshot in one step, so no event
// falls between the snapshot and the interception (SPEC R-M4).
func (d *Daemon) FreezeAndSnapshot(ctx context.Context, f Interceptor) (*snapshot.Snapshot, error) {
	d.mu.Lock()
	d.SetInterceptor(f)
	d.mu.Unlock()
	s, err := d.Snapshot(ctx)
	if err != nil {
		d.SetInterceptor(nil)
		return nil, err
	}
	return s, nil
}

// Apply processes an event directly, bypassing any interceptor: the
// migration replays buffered events with it.
func (d *Daemon) Apply(ctx context.Context, ev Event) ([]Output, error) {
	return d.deliverOwned(ctx, ev, false)
}

// WipeKey zeroes the daemon's private key after it has moved away.
func (d *Daemon) WipeKey() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.id.Wipe()
}

type daemonState uint8

const (
	daemonRunning daemonState = iota
	daemonFailed
	daemonStopped
)

// Origin is the daemon's 64-bit address.
func (d *Daemon) Origin() uint64 { return d.origin }

// ID is the origin rendered as 16 hex digits.
func (d *Daemon) ID() string { return d.idText }

// EntityID is the daemon's ed25519 public key.
func (d *Daemon) EntityID() [abi.EntityIDSize]byte { return d.entity }

// Kind is the daemon's module.
func (d *Daemon) Kind() *Kind { return d.kind }

// Name is the operator-given name ("" if none).
func (d *Daemon) Name() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// SetName renames the daemon (a name follows a daemon across a migration).
func (d *Daemon) SetName(name string) {
	d.mu.Lock()
	d.name = name
	d.mu.Unlock()
}

// KindName is the kind name the daemon runs as ("" if only a digest).
func (d *Daemon) KindName() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kindName
}

// Carried is the name and kind name a snapshot brought along.
type Carried struct {
	Name     string
	KindName string
}

// Carried returns what the snapshot the daemon was built from (or, after a
// pre-copy, its final delta) named it; zero for a fresh spawn or a
// snapshot without annotations.
func (d *Daemon) Carried() Carried {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.carried
}

// Limits are the daemon's effective limits.
func (d *Daemon) Limits() Limits { return d.limits }

// Stats is a daemon's counters (SPEC R-D5).
type Stats struct {
	Origin          uint64
	Kind            Digest
	KindName        string
	Name            string
	EventsProcessed uint64
	EventsEmitted   uint64
	Errors          uint64
	Snapshots       uint64
	LastError       string
	MemoryBytes     uint64
	CPUTime         time.Duration // sampled by the watchdog: exact over many ticks, not per event
	InputSeq        uint64
	ChainSequence   uint64
	LogsDropped     uint64
	Failed          bool
	Mode            string
}

// Stats returns the current counters.
func (d *Daemon) Stats() Stats {
	s := Stats{
		Origin:      d.origin,
		Kind:        d.kind.Digest,
		Errors:      d.errs.Load(),
		Snapshots:   d.snapshots.Load(),
		CPUTime:     time.Duration(d.cpuNanos.Load()),
		LogsDropped: d.logsDropped.Load(),
		Mode:        d.kind.Info.Mode,
	}
	if p := d.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	d.mu.Lock()
	if d.inst != nil && d.state != daemonStopped {
		s.MemoryBytes = uint64(d.inst.mem.Size())
	}
	s.EventsProcessed, s.EventsEmitted = d.countsLocked()
	s.Name = d.name
	s.KindName = d.kindName
	s.InputSeq = d.inputSeq
	s.ChainSequence = d.head.Sequence
	s.Failed = d.state == daemonFailed
	d.mu.Unlock()
	return s
}

// ChainHead returns the last link and its head hash; a validator started
// from them accepts the daemon's next outputs.
func (d *Daemon) ChainHead() (chain.Link, [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.head, d.headHash
}

// Horizon returns a copy of the per-sender watermarks.
func (d *Daemon) Horizon() map[uint64]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.horizon.Entries()
}

// Logs returns the retained log lines, oldest first.
func (d *Daemon) Logs() []LogLine { return d.logs.snapshot() }

// Deliver processes one event and returns its outputs (owned by the caller).
func (d *Daemon) Deliver(ctx context.Context, ev Event) ([]Output, error) {
	return d.deliverOwned(ctx, ev, true)
}

// deliverOwned collects into a pooled Outputs and hands back one copy the
// caller owns: two allocations whatever the number of outputs, none for an
// event that emits nothing.
func (d *Daemon) deliverOwned(ctx context.Context, ev Event, interceptable bool) ([]Output, error) {
	out := d.rt.outputs.get()
	defer d.rt.outputs.put(out)
	if err := d.deliver(ctx, ev, out, interceptable); err != nil {
		return nil, err
	}
	return out.owned(), nil
}

// DeliverInto processes one event, collecting outputs into out (reset
// first). Reusing out across calls makes delivery allocation-free.
func (d *Daemon) DeliverInto(ctx context.Context, ev Event, out *Outputs) error {
	return d.deliver(ctx, ev, out, true)
}

func (d *Daemon) intercepted(ctx context.Context, f *Interceptor, ev Event, out *Outputs) error {
	items, err := (*f)(ctx, ev)
	out.Items = append(out.Items, items...)
	return err
}

func (d *Daemon) deliver(ctx context.Context, ev Event, out *Outputs, interceptable bool) error {
	out.reset()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Each check loads the interceptor once: another goroutine may remove
	// it at any moment (a migration going live or resuming).
	if interceptable {
		if f := d.intercept.Load(); f != nil {
			return d.intercepted(ctx, f, ev, out)
		}
	}
	d.mu.Lock()
	// Re-check under the lock: a freeze installs the interceptor under
	// d.mu, so an event that passes here is ordered before the snapshot.
	if interceptable {
		if f := d.intercept.Load(); f != nil {
			d.mu.Unlock()
			return d.intercepted(ctx, f, ev, out)
		}
	}
	if err := d.usableLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	if err := d.duplicateLocked(&ev); err != nil {
		d.mu.Unlock()
		return err
	}
	if len(ev.Payload) > d.limits.MaxInputBytes {
		d.mu.Unlock()
		return d.eventFailed(&EventError{Origin: d.origin, InputSeq: d.inputSeq + 1, Cause: ErrInputTooLarge,
			Detail: fmt.Sprintf("%d bytes, limit %d", len(ev.Payload), d.limits.MaxInputBytes), RolledBack: true})
	}
	if d.journal.pending {
		d.checkpointLocked()
	}
	in := d.inst
	in.out = out
	in.rec.reset()
	in.resetSends()
	err := in.process(ctx, &ev)
	in.out = nil
	if err != nil {
		ee := d.rollbackLocked(ctx, err)
		d.mu.Unlock()
		out.reset()
		return d.eventFailed(ee)
	}
	out.materialize()
	sent := len(in.sends) > 0
	d.commitLocked(&ev, out, in.rec.buf)
	obs := d.observers.Load()
	d.mu.Unlock()
	if sent && d.rt.cfg.OnSends != nil {
		d.rt.cfg.OnSends(d.origin)
	}
	if obs != nil {
		for _, o := range *obs {
			o.fn(ev, out.Items)
		}
	}
	return nil
}

// Usable is nil while the daemon takes events, else why not: it is
// stopped (ErrDaemonStopped) or failed (ErrDaemonFailed, with the cause).
func (d *Daemon) Usable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.usableLocked()
}

func (d *Daemon) usableLocked() error {
	switch d.state {
	case daemonStopped:
		return fmt.Errorf("%w: %016x", ErrDaemonStopped, d.origin)
	case daemonFailed:
		return fmt.Errorf("%w: %016x: %v", ErrDaemonFailed, d.origin, d.failErr)
	}
	return nil
}

func (d *Daemon) eventFailed(ee *EventError) error {
	d.errs.Add(1)
	msg := ee.Error()
	d.lastErr.Store(&msg)
	return ee
}

// commitLocked advances the chain, horizon and input sequence for a
// successful event and journals it for rollback.
func (d *Daemon) commitLocked(ev *Event, out *Outputs, rec []byte) {
	headBefore, hhBefore := d.head, d.headHash
	d.inputSeq++
	d.horizon.Observe(ev.Sender, ev.Seq)
	hz := d.horizon.Digest()
	var sum uint64
	for i := range out.Items {
		link := chain.Next(d.head, d.headHash, hz)
		d.head = link
		d.headHash = d.hasher.Hash(link, out.Items[i].Payload)
		sum = sum*31 + binary.LittleEndian.Uint64(d.headHash[:8])
		out.Items[i].Link = link
	}
	// The sends join the outbox in the same step as the event: a snapshot
	// or a journal record never sees one without the other.
	d.outbox.commit(d.inst.sends)
	d.inst.resetSends()
	d.journal.append(ev, rec, len(out.Items), sum, headBefore, hhBefore, hz)
	d.journalLocked(ev, rec)
	if d.journal.due() {
		d.checkpointLocked()
	}
}

// checkpointLocked refreshes the in-memory rollback point. A daemon whose
// tables were mutated cannot be captured; it keeps its older checkpoint
// invalidated and a failing event will then mark it failed.
func (d *Daemon) checkpointLocked() {
	if err := d.inst.capture(&d.journal.ckpt, d.rt.zeroPage); err != nil {
		d.journal.invalidate(err)
		return
	}
	d.journal.reset()
}

// rollbackLocked rebuilds the instance as it was before the failed event:
// a fresh instance from the checkpoint, then the journaled events replayed
// with their recorded clock and randomness. If that cannot reproduce the
// exact outputs, the daemon is marked failed rather than left half-applied.
func (d *Daemon) rollbackLocked(ctx context.Context, cause error) *EventError {
	ee := &EventError{Origin: d.origin, InputSeq: d.inputSeq + 1, Cause: cause}
	var ce *callError
	if errors.As(cause, &ce) {
		ee.Cause, ee.Detail = ce.cause, ce.detail
	}
	fresh, err := d.replayInstance(ctx)
	if err != nil {
		d.state = daemonFailed
		d.failErr = fmt.Errorf("rollback after %v failed: %w", ee.Cause, err)
		d.rt.cfg.Logger.Warn("daemon failed", "daemon", d.ID(), "err", d.failErr)
		// The event's error says why the daemon is failed now, not only
		// what the event did (a start function that blew the budget).
		if ee.Detail != "" {
			ee.Detail += "; "
		}
		ee.Detail += "rollback failed: " + err.Error()
		return ee
	}
	old := d.inst
	d.inst = fresh
	old.close(ctx)
	ee.RolledBack = true
	return ee
}

func (d *Daemon) replayInstance(ctx context.Context) (*instance, error) {
	if d.journal.invalid != nil {
		return nil, d.journal.invalid
	}
	in, err := d.rt.instantiate(ctx, d, d.variant)
	if err != nil {
		return nil, err
	}
	ck := &d.journal.ckpt
	if err := in.apply(ck.memPages, ck.pages(), ck.globals); err != nil {
		in.close(ctx)
		return nil, err
	}
	for i := range d.journal.entries {
		ev, rec, want := d.journal.event(i)
		in.rec.replaying, in.rec.buf, in.rec.pos, in.rec.diverged = true, rec, 0, false
		d.scratch.reset()
		in.out = &d.scratch
		err := in.process(ctx, &ev)
		in.out = nil
		// The replayed event's sends were committed to the outbox when it
		// ran live; the replay only rebuilds the instance.
		in.resetSends()
		if err != nil {
			in.close(ctx)
			return nil, fmt.Errorf("replay of journaled event %d: %w", i, err)
		}
		d.scratch.materialize()
		// Recompute the links the live run produced from the same head:
		// equal sums mean equal payloads in equal order.
		var sum uint64
		head, hh := want.head, want.headHash
		for _, o := range d.scratch.Items {
			head = chain.Next(head, hh, want.horizon)
			hh = d.hasher.Hash(head, o.Payload)
			sum = sum*31 + binary.LittleEndian.Uint64(hh[:8])
		}
		if in.rec.diverged || in.rec.pos != len(rec) || len(d.scratch.Items) != want.outs || sum != want.sum {
			in.close(ctx)
			return nil, fmt.Errorf("replay of journaled event %d diverged: the guest is not deterministic given its recorded inputs", i)
		}
	}
	in.rec = &recorder{}
	return in, nil
}

// Snapshot captures the daemon's full state (SPEC R-S1). The returned
// snapshot owns its memory.
func (d *Daemon) Snapshot(ctx context.Context) (*snapshot.Snapshot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked(); err != nil {
		return nil, err
	}
	s := d.metaSnapshotLocked()
	if d.kind.Cooperative() {
		state, err := d.inst.coopSnapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: cooperative snapshot: %w", ErrSnapshotUnsupported, err)
		}
		s.Mode, s.State = snapshot.Cooperative, state
	} else {
		var im image
		if err := d.inst.capture(&im, d.rt.zeroPage); err != nil {
			return nil, err
		}
		s.Mode, s.MemoryPages, s.Pages, s.Globals = snapshot.Transparent, im.memPages, im.pages(), im.globals
	}
	d.snapSeq++
	s.Sequence = d.snapSeq
	s.Annotations.Counters.Snapshots = d.snapshots.Add(1)
	return s, nil
}

// EncodeSnapshot takes a snapshot and encodes it signed by the daemon key.
func (d *Daemon) EncodeSnapshot(ctx context.Context) ([]byte, error) {
	s, err := d.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return d.SignSnapshot(s)
}

func (d *Daemon) metaSnapshotLocked() *snapshot.Snapshot {
	dg, _ := d.kind.Digest.Bytes()
	return &snapshot.Snapshot{
		ModuleDigest: dg,
		EntityID:     d.entity,
		ChainHead:    d.head,
		HeadHash:     d.headHash,
		Horizon:      d.horizon.Entries(),
		InputSeq:     d.inputSeq,
		Ledger:       append([]snapshot.Subscription(nil), d.ledger...),
		Annotations:  d.annotationsLocked(),
		Outbox:       d.outbox.toSnapshot(),
	}
}

// countsLocked is events processed and outputs emitted. Every committed
// event advances the input sequence by one and the chain by one link per
// output, under mu, so these agree with the state they are read with.
func (d *Daemon) countsLocked() (processed, emitted uint64) {
	return d.inputSeq + d.processedOff, d.head.Sequence + d.emittedOff
}

// annotationsLocked is what travels with the daemon besides its state
// (FORMAT.md, "Annotations"): a checkpoint or migration that carries it
// brings back the name, kind name, counters and recent log lines.
func (d *Daemon) annotationsLocked() *snapshot.Annotations {
	processed, emitted := d.countsLocked()
	a := &snapshot.Annotations{
		Name:     truncateName(d.name),
		KindName: truncateName(d.kindName),
		Counters: snapshot.Counters{
			EventsProcessed: processed,
			EventsEmitted:   emitted,
			Errors:          d.errs.Load(),
			Snapshots:       d.snapshots.Load(),
			CPUNanos:        uint64(max(d.cpuNanos.Load(), 0)),
			LogsDropped:     d.logsDropped.Load(),
		},
	}
	lines := d.logs.last(snapshot.MaxLogLines)
	if len(lines) > 0 {
		conv := make([]snapshot.LogLine, len(lines))
		for i, l := range lines {
			lv := l.Level
			if lv < abi.LogDebug || lv > abi.LogError {
				lv = abi.LogInfo // as the host reads an unknown level
			}
			conv[i] = snapshot.LogLine{UnixNano: l.Time.UnixNano(), Level: uint8(lv), Text: l.Text}
		}
		a.Logs = snapshot.TrimLogs(conv)
	}
	return a
}

func truncateName(s string) string {
	if len(s) > snapshot.MaxAnnotationName {
		return s[:snapshot.MaxAnnotationName]
	}
	return s
}

// restoreAnnotationsLocked takes back what a snapshot carried: counters
// and log lines continue where they were; name and kind name are offered
// through Carried (the kind name is also taken when none was given). It
// runs after the input sequence and chain head are set from the snapshot;
// without annotations (an older build's snapshot) the counts are the
// input sequence and chain sequence, which is what they were.
func (d *Daemon) restoreAnnotationsLocked(a *snapshot.Annotations) {
	d.processedOff, d.emittedOff = 0, 0
	if a == nil {
		return
	}
	c := a.Counters
	// Modular arithmetic: the offsets are whatever makes the counts come
	// out as the snapshot says (normally zero).
	d.processedOff = c.EventsProcessed - d.inputSeq
	d.emittedOff = c.EventsEmitted - d.head.Sequence
	d.errs.Store(c.Errors)
	d.snapshots.Store(c.Snapshots)
	d.cpuNanos.Store(int64(min(c.CPUNanos, 1<<63-1)))
	d.logsDropped.Store(c.LogsDropped)
	lines := make([]LogLine, len(a.Logs))
	for i, l := range a.Logs {
		lines[i] = LogLine{Time: time.Unix(0, l.UnixNano), Level: int(l.Level), Text: l.Text}
	}
	d.logs.restore(lines)
	d.carried = Carried{Name: a.Name, KindName: a.KindName}
	if d.kindName == "" {
		d.kindName = a.KindName
	}
}

// stop closes the instance; the daemon refuses everything afterwards.
func (d *Daemon) stop(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == daemonStopped {
		return
	}
	d.state = daemonStopped
	if d.inst != nil {
		d.inst.close(ctx)
	}
	d.journal.release()
}

// Observer is a post-delivery callback (SPEC R-L7).
type Observer struct {
	d  *Daemon
	fn func(Event, []Output)
}

// Observe registers fn to run after every successful event, outside the
// daemon's lock, with the event and its outputs (valid during the call only).
func (d *Daemon) Observe(fn func(ev Event, outs []Output)) *Observer {
	o := &Observer{d: d, fn: fn}
	d.obsMu.Lock()
	defer d.obsMu.Unlock()
	var next []*Observer
	if cur := d.observers.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, o)
	d.observers.Store(&next)
	return o
}

// Close removes the observer; later events no longer reach it.
func (o *Observer) Close() {
	d := o.d
	d.obsMu.Lock()
	defer d.obsMu.Unlock()
	cur := d.observers.Load()
	if cur == nil {
		return
	}
	var next []*Observer
	for _, x := range *cur {
		if x != o {
			next = append(next, x)
		}
	}
	if len(next) == 0 {
		d.observers.Store(nil)
		return
	}
	d.observers.Store(&next)
}

// logRing keeps the last lines of a daemon's log.
type logRing struct {
	mu    sync.Mutex
	lines []LogLine
	total uint64 // lines ever added; line i (0-based) sits at i % logRingSize
}

const logRingSize = 1000

func (r *logRing) add(l LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lines == nil {
		r.lines = make([]LogLine, logRingSize)
	}
	r.lines[r.total%logRingSize] = l
	r.total++
}

// after returns the retained lines numbered from `from` on, and the number
// to pass next time. Lines that fell out of the ring are skipped.
func (r *logRing) after(from uint64) ([]LogLine, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if first := r.firstLocked(); from < first {
		from = first
	}
	var out []LogLine
	for i := from; i < r.total; i++ {
		out = append(out, r.lines[i%logRingSize])
	}
	return out, r.total
}

func (r *logRing) firstLocked() uint64 {
	if r.total > logRingSize {
		return r.total - logRingSize
	}
	return 0
}

// last returns up to n of the newest lines, oldest first.
func (r *logRing) last(n int) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.firstLocked()
	if r.total-from > uint64(n) {
		from = r.total - uint64(n)
	}
	out := make([]LogLine, 0, r.total-from)
	for i := from; i < r.total; i++ {
		out = append(out, r.lines[i%logRingSize])
	}
	return out
}

// restore replaces the ring's contents with lines (oldest first), as a
// daemon continued from a snapshot had them.
func (r *logRing) restore(lines []LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(lines) > logRingSize {
		lines = lines[len(lines)-logRingSize:]
	}
	r.lines, r.total = nil, 0
	if len(lines) == 0 {
		return
	}
	r.lines = make([]LogLine, logRingSize)
	r.total = uint64(copy(r.lines, lines))
}

func (r *logRing) snapshot() []LogLine {
	out, _ := r.after(0)
	return out
}

// LogsAfter returns log lines numbered from `from` on and the next number;
// callers that poll pass the returned number back to get only new lines.
func (d *Daemon) LogsAfter(from uint64) ([]LogLine, uint64) { return d.logs.after(from) }
