// Package wal is a node's write-ahead journal of daemon inputs: every event
// a daemon commits is appended here (with the clock readings and random
// bytes it consumed) and made durable by a group commit before the node
// acknowledges it. After a crash the node restores each daemon from its
// last checkpoint and redoes the journaled events after it, reaching
// exactly the acknowledged state.
//
// The journal is a directory of append-only segment files. One goroutine
// writes and fdatasyncs whatever accumulated since its last write, so one
// fsync covers every event that arrived meanwhile (group commit). A segment
// is deleted once every event in it is covered by a checkpoint or belongs
// to a history that no longer matters (a daemon stopped, moved away or
// restored to another state).
package wal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// Errors; test with errors.Is.
var (
	// ErrFailed: a write or fsync of the journal failed; nothing appended
	// after it is durable, and the journal refuses further waits.
	ErrFailed = errors.New("wal: journal write failed")
	// ErrClosed: the journal was closed before the wait was satisfied.
	ErrClosed = errors.New("wal: journal closed")
)

// lingerYields bounds how many times the writer yields to let a growing
// batch grow before it writes: each yield costs about a microsecond, an
// fsync a hundred or more.
const lingerYields = 8

// DefaultSegmentBytes is when a segment is closed and a new one started.
const DefaultSegmentBytes = 16 << 20

// Options tune a journal; zero values are defaults.
type Options struct {
	SegmentBytes int64
	Logger       *slog.Logger
	// NoSync skips fdatasync (tests and benchmarks of the write path only).
	NoSync bool
}

// histKey names one history of one daemon.
type histKey struct{ origin, inc uint64 }

// segment is a closed or current segment file and, per history, the
// highest input sequence it holds.
type segment struct {
	index uint64
	path  string
	max   map[histKey]uint64
}

// Journal is safe for concurrent use. It implements engine.InputJournal.
type Journal struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	buf      []byte             // appended, not yet handed to the writer
	bufMax   map[histKey]uint64 // what buf holds, per history
	appended uint64             // bytes ever appended (logical position)
	durable  uint64             // bytes known durable
	flushed  chan struct{}      // closed and replaced whenever durable moves
	// Mirrors of appended, durable and flushed that Sync reads without
	// the lock: hundreds of waiters wake at each group commit, and each
	// re-taking mu would cost more than the commit.
	appendedA atomic.Uint64
	durableA  atomic.Uint64
	flushedA  atomic.Pointer[chan struct{}]
	closedA   atomic.Bool
	kick      chan struct{}
	nextInc   uint64
	current   map[uint64]uint64  // origin -> its live incarnation
	covered   map[histKey]uint64 // history -> input seq a durable checkpoint covers
	segs      []*segment         // oldest first; the last is being written
	holdOld   bool               // recovery not finished: keep segments from before Open
	oldSegs   uint64             // segments with index below this predate Open
	openInc   uint64             // incarnations up to this one predate Open
	kept      map[uint64]bool    // origins whose history from before Open stays needed (Keep)
	carried   *segment           // oldest segment whose needed events were appended again
	carriedAt uint64             // ... at this logical position: drop it once durable
	failed    error
	broken    atomic.Bool // failed != nil, readable without mu on the hot path
	closed    bool

	file     *os.File // only the writer goroutine touches it after Open
	fileSize int64
	done     chan struct{}
	fsyncs   uint64
	spare    []byte
	spareMax map[histKey]uint64
}

// Recovered is what the journal held at Open: for each daemon, the events
// of its latest history, in order.
type Recovered struct {
	// Histories maps origin to the events of its latest incarnation.
	Histories map[uint64][]Record
	// Damaged lists segments whose tail or middle did not decode; their
	// intact prefix was kept.
	Damaged []string
}

// Open opens (or creates) the journal in dir, reads what it holds, and
// starts a new segment for what comes next. Segments from before Open are
// kept until Done is called: the caller redoes their events first.
func Open(dir string, opts Options) (*Journal, *Recovered, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	j := &Journal{
		dir: dir, opts: opts, log: opts.Logger,
		bufMax: map[histKey]uint64{}, spareMax: map[histKey]uint64{},
		flushed: make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{}),
		current: map[uint64]uint64{}, covered: map[histKey]uint64{}, holdOld: true,
	}
	first := j.flushed
	j.flushedA.Store(&first)
	rec, next, err := j.readAll()
	if err != nil {
		return nil, nil, err
	}
	j.oldSegs = next
	j.openInc = j.nextInc
	if err := j.startSegment(next); err != nil {
		return nil, nil, err
	}
	go j.writer()
	return j, rec, nil
}

func segName(index uint64) string { return fmt.Sprintf("%016x.wal", index) }

// readAll loads every segment, oldest first.
func (j *Journal) readAll() (*Recovered, uint64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: %w", err)
	}
	var idx []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".wal") {
			if n, err := strconv.ParseUint(strings.TrimSuffix(name, ".wal"), 16, 64); err == nil && len(name) == 20 {
				idx = append(idx, n)
			}
		}
	}
	slices.Sort(idx)
	rec := &Recovered{Histories: map[uint64][]Record{}}
	live := map[uint64]uint64{} // origin -> incarnation of its last record
	var next uint64
	for i, n := range idx {
		next = n + 1
		path := filepath.Join(j.dir, segName(n))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, 0, fmt.Errorf("wal: %w", err)
		}
		seg := &segment{index: n, path: path, max: map[histKey]uint64{}}
		good, derr := j.decodeSegment(data, seg, rec, live)
		if derr != nil {
			last := i == len(idx)-1
			j.log.Error("journal segment damaged; kept its intact prefix", "segment", path, "intact_bytes", good, "last", last, "err", derr)
			rec.Damaged = append(rec.Damaged, path)
		}
		j.segs = append(j.segs, seg)
	}
	for o, h := range rec.Histories {
		rec.Histories[o] = ordered(h)
	}
	for o, inc := range live {
		j.current[o] = inc
		if inc >= j.nextInc {
			j.nextInc = inc
		}
	}
	for _, s := range j.segs {
		for k := range s.max {
			j.nextInc = max(j.nextInc, k.inc)
		}
	}
	return rec, next, nil
}

// decodeSegment adds a segment's records to rec and returns how many bytes
// decoded cleanly.
func (j *Journal) decodeSegment(data []byte, seg *segment, rec *Recovered, live map[uint64]uint64) (int, error) {
	if len(data) < len(segmentMagic) {
		if len(data) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("%w: %d-byte segment header", ErrCorrupt, len(data))
	}
	if string(data[:len(segmentMagic)]) != segmentMagic {
		return 0, fmt.Errorf("%w: not a journal segment", ErrCorrupt)
	}
	rest := data[len(segmentMagic):]
	for len(rest) > 0 {
		body, after, err := nextFrame(rest)
		if err != nil {
			return len(data) - len(rest), err
		}
		r, err := decodeBody(body)
		if err != nil {
			return len(data) - len(rest), err
		}
		rest = after
		if r.Kind == kindEvent {
			k := histKey{r.Origin, r.Incarnation}
			seg.max[k] = max(seg.max[k], r.InputSeq)
		}
		// Incarnations only grow: the highest one seen is the daemon's
		// history; a newer one supersedes whatever came before it, and
		// records of older ones (wherever compaction put them) do not count.
		prev, ok := live[r.Origin]
		if ok && r.Incarnation < prev {
			continue
		}
		if !ok || r.Incarnation > prev {
			rec.Histories[r.Origin] = rec.Histories[r.Origin][:0]
			live[r.Origin] = r.Incarnation
		}
		if r.Kind == kindEvent {
			rec.Histories[r.Origin] = append(rec.Histories[r.Origin], r)
		}
	}
	return len(data), nil
}

// ordered sorts a history by input sequence and drops repeats (events
// carried forward by compaction appear twice until the old copy goes).
func ordered(h []Record) []Record {
	slices.SortStableFunc(h, func(a, b Record) int { return cmp.Compare(a.InputSeq, b.InputSeq) })
	return slices.CompactFunc(h, func(a, b Record) bool { return a.InputSeq == b.InputSeq })
}

// startSegment creates segment index and makes its directory entry durable.
func (j *Journal) startSegment(index uint64) error {
	path := filepath.Join(j.dir, segName(index))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	if _, err := f.Write([]byte(segmentMagic)); err != nil {
		f.Close()
		return fmt.Errorf("wal: %w", err)
	}
	if err := j.syncFile(f); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	if j.file != nil {
		j.file.Close()
	}
	j.file, j.fileSize = f, int64(len(segmentMagic))
	j.mu.Lock()
	j.segs = append(j.segs, &segment{index: index, path: path, max: map[histKey]uint64{}})
	j.mu.Unlock()
	return nil
}

func (j *Journal) syncFile(f *os.File) error {
	if j.opts.NoSync {
		return nil
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("%w: fdatasync: %w", ErrFailed, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: sync dir: %w", ErrFailed, err)
	}
	return nil
}

// Begin implements engine.InputJournal.
func (j *Journal) Begin(origin, inputSeq uint64) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.nextInc++
	inc := j.nextInc
	j.current[origin] = inc
	n := len(j.buf)
	j.buf = appendFrame(j.buf, &Record{Kind: kindBegin, Origin: origin, Incarnation: inc, InputSeq: inputSeq})
	j.afterAppendLocked(n)
	return inc
}

// Record implements engine.InputJournal.
func (j *Journal) Record(inc, origin, inputSeq uint64, ev *engine.Event, rec []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := len(j.buf)
	j.buf = appendFrame(j.buf, &Record{Kind: kindEvent, Origin: origin, Incarnation: inc, InputSeq: inputSeq,
		Sender: ev.Sender, SenderSeq: ev.Seq, Payload: ev.Payload, Readings: rec})
	k := histKey{origin, inc}
	j.bufMax[k] = max(j.bufMax[k], inputSeq)
	j.afterAppendLocked(n)
}

// afterAppendLocked accounts for the frame appended at buf[from:] and wakes
// the writer.
func (j *Journal) afterAppendLocked(from int) {
	j.appended += uint64(len(j.buf) - from)
	j.appendedA.Store(j.appended)
	j.kickLocked()
}

// Sync waits until everything appended before the call is durable.
func (j *Journal) Sync(ctx context.Context) error {
	target := j.appendedA.Load()
	for {
		if j.durableA.Load() >= target {
			return nil
		}
		if j.broken.Load() {
			return j.Err()
		}
		if j.closedA.Load() {
			return ErrClosed
		}
		ch := *j.flushedA.Load()
		// Re-check after taking the channel: the writer stores durable
		// before it swaps the channel, so a commit in between is seen here.
		if j.durableA.Load() >= target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wakeLocked wakes every Sync waiting on the current channel. Caller holds
// mu (so there is one swapper) and has stored durable, broken or closed.
func (j *Journal) wakeLocked() {
	next := make(chan struct{})
	old := j.flushedA.Swap(&next)
	j.flushed = next
	close(*old)
}

// Err is the sticky write failure, if any: a node must stop acknowledging.
func (j *Journal) Err() error {
	if !j.broken.Load() {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// Checkpointed records that a durable checkpoint of origin's history inc
// covers every event up to inputSeq, so segments holding only such events
// can go.
func (j *Journal) Checkpointed(origin, inc, inputSeq uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := histKey{origin, inc}
	if inputSeq > j.covered[k] {
		j.covered[k] = inputSeq
	}
	j.kickLocked()
}

// Forget records that origin's journaled events are no longer needed (the
// daemon stopped with a final checkpoint, or moved to another node).
func (j *Journal) Forget(origin uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.current, origin)
	delete(j.kept, origin)
	j.kickLocked()
}

// Done tells the journal that the events it returned from Open have been
// redone (and synced) or are not wanted: the segments from before Open may
// go once nothing else holds them.
func (j *Journal) Done() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.holdOld = false
	// Histories from before Open that nobody began again are gone (the
	// daemon was not recovered): their records no longer hold segments.
	for o, inc := range j.current {
		if inc <= j.openInc && !j.kept[o] {
			delete(j.current, o)
		}
	}
	j.kickLocked()
}

// Keep tells the journal that origin's history from before Open stays
// needed although no daemon begins it again (its daemon could not be
// recovered and is to be retried at the next start): Done leaves it, and
// truncation carries its uncovered events forward like a live history's,
// so they survive without holding every old segment. Forget ends it.
func (j *Journal) Keep(origin uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.kept == nil {
		j.kept = map[uint64]bool{}
	}
	j.kept[origin] = true
}

func (j *Journal) kickLocked() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// Stats are the journal's counters.
type Stats struct {
	Appended, Durable uint64
	Fsyncs            uint64
	Segments          int
}

// Stats returns the current counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{Appended: j.appended, Durable: j.durable, Fsyncs: j.fsyncs, Segments: len(j.segs)}
}

// Close makes everything appended durable and stops the writer.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		<-j.done
		return nil
	}
	j.closed = true
	j.kickLocked()
	j.mu.Unlock()
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closedA.Store(true)
	j.wakeLocked()
	var err error
	if j.file != nil {
		err = j.file.Close()
		j.file = nil
	}
	return cmp.Or(j.failed, err)
}

// writer is the group commit: it writes whatever accumulated since its
// last turn with one write and one fdatasync, then wakes every waiter.
func (j *Journal) writer() {
	defer close(j.done)
	for {
		j.mu.Lock()
		for len(j.buf) == 0 && !j.closed {
			j.mu.Unlock()
			<-j.kick
			j.truncate()
			j.mu.Lock()
		}
		if len(j.buf) == 0 && j.closed {
			j.mu.Unlock()
			return
		}
		// Linger while the batch still grows: the senders the last fsync
		// woke are runnable and about to append; one fsync for all of them
		// costs less (in CPU too: fdatasync is kernel work) than one each.
		for range lingerYields {
			n := len(j.buf)
			j.mu.Unlock()
			runtime.Gosched()
			j.mu.Lock()
			if len(j.buf) == n || j.closed {
				break
			}
		}
		data, dmax := j.buf, j.bufMax
		j.buf, j.bufMax = j.spare[:0], j.spareMax
		target := j.appended
		failed := j.failed
		j.mu.Unlock()

		err := failed
		if err == nil {
			if _, werr := j.file.Write(data); werr != nil {
				err = fmt.Errorf("%w: write: %w", ErrFailed, werr)
			} else if serr := j.syncFile(j.file); serr != nil {
				err = serr
			}
		}
		j.fileSize += int64(len(data))

		j.mu.Lock()
		if err != nil {
			if j.failed == nil {
				j.log.Error("journal write failed: the node stops acknowledging events", "err", err)
			}
			j.failed = err
			j.broken.Store(true)
		} else {
			j.durable = target
			j.durableA.Store(target)
			j.fsyncs++
			cur := j.segs[len(j.segs)-1]
			for k, v := range dmax {
				cur.max[k] = max(cur.max[k], v)
			}
		}
		clear(dmax)
		j.spare, j.spareMax = data[:0], dmax
		j.wakeLocked()
		rotate := err == nil && j.fileSize >= j.opts.SegmentBytes
		next := j.segs[len(j.segs)-1].index + 1
		j.mu.Unlock()

		if rotate {
			if err := j.startSegment(next); err != nil {
				j.mu.Lock()
				j.failed = err
				j.broken.Store(true)
				j.mu.Unlock()
				j.log.Error("journal segment not started", "err", err)
			}
		}
		j.truncate()
	}
}

// truncate deletes the oldest segments while every event in them is
// obsolete. Only a prefix goes. When the oldest segment is held by a few
// events that stay needed (a daemon that cannot be checkpointed, or failed)
// while newer segments pile up behind it, those events are carried forward:
// appended again, and the old segment deleted once the copies are durable.
func (j *Journal) truncate() {
	for {
		j.mu.Lock()
		if len(j.segs) < 2 { // the last one is being written
			j.mu.Unlock()
			return
		}
		s := j.segs[0]
		if j.carried == s {
			if j.durable < j.carriedAt {
				j.mu.Unlock()
				return
			}
			j.carried = nil
		} else if (j.holdOld && s.index < j.oldSegs) || !j.obsoleteLocked(s) {
			carry := j.carried == nil && !(j.holdOld && s.index < j.oldSegs) && len(j.segs) > carryAfterSegments
			j.mu.Unlock()
			if carry {
				j.carryForward(s)
			}
			return
		}
		j.segs = j.segs[1:]
		j.mu.Unlock()
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("journal segment not removed", "segment", s.path, "err", err)
		}
	}
}

// carryAfterSegments is how many segments may queue behind a held oldest
// one before its still-needed events are carried forward.
const carryAfterSegments = 4

// carryForward appends the still-needed events of s again; truncate drops s
// once they are durable. Recovery orders a history by input sequence and
// ignores repeats, so the copies may land after newer events.
func (j *Journal) carryForward(s *segment) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		j.log.Warn("journal segment not readable for compaction", "segment", s.path, "err", err)
		return
	}
	rec := &Recovered{Histories: map[uint64][]Record{}}
	scratch := &segment{max: map[histKey]uint64{}}
	if _, err := j.decodeSegment(data, scratch, rec, map[uint64]uint64{}); err != nil {
		j.log.Warn("journal segment damaged; not compacted", "segment", s.path, "err", err)
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	kept := 0
	for _, h := range rec.Histories {
		for i := range h {
			r := &h[i]
			k := histKey{r.Origin, r.Incarnation}
			if j.current[r.Origin] != r.Incarnation || j.covered[k] >= r.InputSeq {
				continue
			}
			n := len(j.buf)
			j.buf = appendFrame(j.buf, r)
			j.bufMax[k] = max(j.bufMax[k], r.InputSeq)
			j.afterAppendLocked(n)
			kept++
		}
	}
	j.carried, j.carriedAt = s, j.appended
	j.log.Info("journal segment compacted: its needed events carried forward", "segment", s.path, "events", kept)
}

func (j *Journal) obsoleteLocked(s *segment) bool {
	for k, maxSeq := range s.max {
		if j.current[k.origin] == k.inc && j.covered[k] < maxSeq {
			return false
		}
	}
	return true
}

var _ engine.InputJournal = (*Journal)(nil)
