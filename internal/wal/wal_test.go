package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
)

func open(t *testing.T, dir string, opts Options) (*Journal, *Recovered) {
	t.Helper()
	j, rec, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, rec
}

func record(j *Journal, inc, origin, seq uint64, payload string) {
	j.Record(inc, origin, seq, &engine.Event{Sender: 7, Seq: seq * 10, Payload: []byte(payload)}, []byte("rd"+payload))
}

func seqs(rs []Record) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.InputSeq)
	}
	return out
}

func TestReopenReturnsEveryDurableEvent(t *testing.T) {
	dir := t.TempDir()
	j, rec := open(t, dir, Options{})
	if len(rec.Histories) != 0 {
		t.Fatalf("fresh journal holds %v", rec.Histories)
	}
	a := j.Begin(1, 0)
	b := j.Begin(2, 5)
	for i := uint64(1); i <= 3; i++ {
		record(j, a, 1, i, fmt.Sprint("a", i))
		record(j, b, 2, 5+i, fmt.Sprint("b", i))
	}
	if err := j.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, rec = open(t, dir, Options{})
	if got := seqs(rec.Histories[1]); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("daemon 1 events %v", got)
	}
	if got := seqs(rec.Histories[2]); fmt.Sprint(got) != "[6 7 8]" {
		t.Fatalf("daemon 2 events %v", got)
	}
	r := rec.Histories[2][1]
	if string(r.Payload) != "b2" || string(r.Readings) != "rdb2" || r.Sender != 7 || r.SenderSeq != 70 {
		t.Fatalf("record decoded as %+v", r)
	}
}

func TestNewBeginSupersedesOlderHistory(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{})
	a := j.Begin(1, 0)
	for i := uint64(1); i <= 5; i++ {
		record(j, a, 1, i, "old")
	}
	b := j.Begin(1, 2) // restored to an older snapshot
	record(j, b, 1, 3, "new")
	if a == b {
		t.Fatal("two histories share an incarnation")
	}
	j.Close()
	j2, rec := open(t, dir, Options{})
	h := rec.Histories[1]
	if len(h) != 1 || string(h[0].Payload) != "new" || h[0].Incarnation != b {
		t.Fatalf("history after reopen: %+v", h)
	}
	// Incarnations keep increasing across a restart.
	if c := j2.Begin(1, 3); c <= b {
		t.Fatalf("incarnation %d after restart is not above %d", c, b)
	}
}

func TestTornTailKeepsIntactPrefix(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{})
	a := j.Begin(1, 0)
	for i := uint64(1); i <= 4; i++ {
		record(j, a, 1, i, "x")
	}
	j.Close()
	seg := filepath.Join(dir, segName(0))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	_, rec := open(t, dir, Options{})
	if got := seqs(rec.Histories[1]); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("after a torn tail: %v", got)
	}
	if len(rec.Damaged) != 1 {
		t.Fatalf("damaged segments %v", rec.Damaged)
	}
}

func TestCorruptByteIsDetected(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{})
	a := j.Begin(1, 0)
	record(j, a, 1, 1, "first")
	record(j, a, 1, 2, "second")
	j.Close()
	seg := filepath.Join(dir, segName(0))
	data, _ := os.ReadFile(seg)
	i := bytes.LastIndex(data, []byte("second"))
	data[i] ^= 0xff
	os.WriteFile(seg, data, 0o600)
	_, rec := open(t, dir, Options{})
	if got := seqs(rec.Histories[1]); fmt.Sprint(got) != "[1]" {
		t.Fatalf("a flipped byte was accepted: %v", got)
	}
}

func segments(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestCheckpointedSegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{SegmentBytes: 256})
	ctx := context.Background()
	a := j.Begin(1, 0)
	b := j.Begin(2, 0)
	var seq uint64
	for range 20 {
		seq++
		record(j, a, 1, seq, "0123456789012345678901234567890123456789")
		if err := j.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	record(j, b, 2, 1, "keep me")
	j.Sync(ctx)
	before := segments(t, dir)
	if before < 5 {
		t.Fatalf("only %d segments: rotation did not happen", before)
	}
	j.Checkpointed(1, a, seq)
	record(j, a, 1, seq+1, "after")
	j.Sync(ctx)
	j.Sync(ctx)
	// Daemon 2's only event is not covered: its segment and all after it stay.
	j.Close()
	_, rec := open(t, dir, Options{})
	if h := rec.Histories[2]; len(h) != 1 || string(h[0].Payload) != "keep me" {
		t.Fatalf("an uncovered event was deleted: %+v", h)
	}
	if after := segments(t, dir); after >= before {
		t.Fatalf("segments %d -> %d: covered ones were not deleted", before, after)
	}
	if h := rec.Histories[1]; len(h) == 0 || h[len(h)-1].InputSeq != seq+1 {
		t.Fatalf("daemon 1 lost its uncovered tail: %v", seqs(h))
	}
}

func TestDoneReleasesSegmentsOfUnrecoveredDaemons(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{SegmentBytes: 64})
	a := j.Begin(9, 0)
	for i := uint64(1); i <= 5; i++ {
		record(j, a, 9, i, "gone")
	}
	j.Close()
	j2, rec := open(t, dir, Options{SegmentBytes: 64})
	if len(rec.Histories[9]) != 5 {
		t.Fatalf("recovered %v", seqs(rec.Histories[9]))
	}
	old := segments(t, dir)
	// Before Done nothing from before Open goes, even after writes.
	c := j2.Begin(3, 0)
	record(j2, c, 3, 1, "0123456789012345678901234567890123456789012345678901234567890123456789")
	j2.Sync(context.Background())
	if segments(t, dir) < old {
		t.Fatal("a segment from before Open was deleted before Done")
	}
	j2.Done()
	j2.Checkpointed(3, c, 1)
	record(j2, c, 3, 2, "0123456789012345678901234567890123456789012345678901234567890123456789")
	j2.Sync(context.Background())
	j2.Close()
	_, rec = open(t, dir, Options{})
	if len(rec.Histories[9]) != 0 {
		t.Fatalf("daemon 9 was not recovered, yet its events stayed: %v", seqs(rec.Histories[9]))
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	j, _ := open(t, t.TempDir(), Options{})
	const writers, each = 32, 50
	var wg sync.WaitGroup
	for w := range writers {
		inc := j.Begin(uint64(w+1), 0)
		wg.Go(func() {
			for i := uint64(1); i <= each; i++ {
				record(j, inc, uint64(w+1), i, "payload")
				if err := j.Sync(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := j.Stats()
	if st.Durable != st.Appended {
		t.Fatalf("durable %d of %d bytes", st.Durable, st.Appended)
	}
	if st.Fsyncs >= writers*each {
		t.Fatalf("%d fsyncs for %d synced events: no group commit", st.Fsyncs, writers*each)
	}
}

func TestSyncAfterCloseAndCancel(t *testing.T) {
	j, _ := open(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	record(j, j.Begin(1, 0), 1, 1, "x")
	if err := j.Sync(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sync: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Sync(context.Background()); err != nil {
		t.Fatalf("sync after close with nothing pending: %v", err)
	}
}

func TestWriteFailureIsStickyAndReported(t *testing.T) {
	j, _ := open(t, t.TempDir(), Options{})
	inc := j.Begin(1, 0)
	record(j, inc, 1, 1, "ok")
	if err := j.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The disk goes away under the writer.
	j.file.Close()
	record(j, inc, 1, 2, "lost")
	if err := j.Sync(context.Background()); !errors.Is(err, ErrFailed) {
		t.Fatalf("sync after a failed write: %v", err)
	}
	if !errors.Is(j.Err(), ErrFailed) {
		t.Fatalf("Err() = %v", j.Err())
	}
	record(j, inc, 1, 3, "also lost")
	if err := j.Sync(context.Background()); !errors.Is(err, ErrFailed) {
		t.Fatalf("a later sync succeeded after the journal failed: %v", err)
	}
}

func TestHeldSegmentIsCompactedNotKeptForever(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{SegmentBytes: 256})
	ctx := context.Background()
	stuck := j.Begin(1, 0) // a daemon that is never checkpointed
	record(j, stuck, 1, 1, "stuck-1")
	record(j, stuck, 1, 2, "stuck-2")
	j.Sync(ctx)
	busy := j.Begin(2, 0)
	var seq uint64
	for range 200 {
		seq++
		record(j, busy, 2, seq, "0123456789012345678901234567890123456789")
		j.Sync(ctx)
		j.Checkpointed(2, busy, seq)
	}
	if n := segments(t, dir); n > 2*carryAfterSegments {
		t.Fatalf("%d segments: the stuck daemon's segment holds every later one", n)
	}
	j.Close()
	_, rec := open(t, dir, Options{})
	if got := seqs(rec.Histories[1]); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("the stuck daemon's events after compaction: %v", got)
	}
	if string(rec.Histories[1][1].Payload) != "stuck-2" {
		t.Fatalf("carried event decoded as %+v", rec.Histories[1][1])
	}
}

// A history from before Open that no daemon begins again but the node
// keeps (its daemon failed to recover) survives Done, is carried forward
// instead of holding every later segment, is back at the next Open, and
// goes with Forget.
func TestKeptHistorySurvivesDoneAndCompaction(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j, _ := open(t, dir, Options{SegmentBytes: 256})
	a := j.Begin(9, 0)
	for i := uint64(1); i <= 3; i++ {
		record(j, a, 9, i, "kept")
	}
	j.Close()
	j2, rec := open(t, dir, Options{SegmentBytes: 256})
	if got := seqs(rec.Histories[9]); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("recovered %v", got)
	}
	j2.Keep(9)
	j2.Checkpointed(9, rec.Histories[9][0].Incarnation, 1) // its checkpoint covers event 1
	j2.Done()
	busy := j2.Begin(2, 0)
	for seq := uint64(1); seq <= 200; seq++ {
		record(j2, busy, 2, seq, "0123456789012345678901234567890123456789")
		j2.Sync(ctx)
		j2.Checkpointed(2, busy, seq)
	}
	if n := segments(t, dir); n > 2*carryAfterSegments {
		t.Fatalf("%d segments: the kept history holds every later one", n)
	}
	j2.Close()
	j3, rec := open(t, dir, Options{SegmentBytes: 256})
	if got := seqs(rec.Histories[9]); fmt.Sprint(got) != "[2 3]" && fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("the kept history after Done and compaction: %v, want its uncovered events 2 and 3", got)
	}
	j3.Forget(9)
	j3.Done()
	c := j3.Begin(3, 0)
	for seq := uint64(1); seq <= 20; seq++ {
		record(j3, c, 3, seq, "0123456789012345678901234567890123456789")
		j3.Sync(ctx)
		j3.Checkpointed(3, c, seq)
	}
	j3.Close()
	if _, rec = open(t, dir, Options{}); len(rec.Histories[9]) != 0 {
		t.Fatalf("a forgotten kept history stayed: %v", seqs(rec.Histories[9]))
	}
}
