package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// diskUsage is store.db plus every snapshot file.
func diskUsage(t *testing.T, dbPath string) int64 {
	t.Helper()
	var total int64
	for _, p := range []string{dbPath, SnapshotDir(dbPath)} {
		err := filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				total += fi.Size()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return total
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func snapFiles(t *testing.T, dbPath string) []string {
	t.Helper()
	es, err := os.ReadDir(SnapshotDir(dbPath))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestLargeSnapshotsDoNotGrowTheStore: 100 checkpoints of a large daemon
// whose snapshot size varies, moved away and back every fourth (its
// record deleted and created again), keep the store (database and files)
// below 3x one snapshot. Inline in bbolt it grew past 4x.
func TestLargeSnapshotsDoNotGrowTheStore(t *testing.T) {
	s, path := open(t)
	const size = 4 << 20
	data := randomBytes(t, size+(1<<20))
	if err := s.Create(Record{Origin: 1, Digest: "sha256:00"}); err != nil {
		t.Fatal(err)
	}
	peak := int64(0)
	for i := 0; i < 100; i++ {
		if i%4 == 3 {
			if err := s.Delete(1); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(Record{Origin: 1, Digest: "sha256:00"}); err != nil {
				t.Fatal(err)
			}
		}
		n := size - (512 << 10) + (i*7919%8)*(128<<10)
		data[i] ^= 0xff
		if _, err := s.PutSnapshot(1, time.Now(), data[:n]); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, diskUsage(t, path))
	}
	got, err := s.LatestSnapshot(1)
	if err != nil || len(got.Data) != size-(512<<10)+(99*7919%8)*(128<<10) {
		t.Fatalf("latest: %d bytes, %v", len(got.Data), err)
	}
	t.Logf("store after 100 checkpoints of ~%d MiB: peak %.1f MiB on disk", size>>20, float64(peak)/(1<<20))
	if peak >= 3*size {
		t.Fatalf("store reached %d bytes on disk for one %d-byte snapshot", peak, size)
	}
}

// TestInterruptedCheckpointKeepsThePrevious: whatever a crash in the
// middle of a checkpoint leaves behind (a temp file, or a renamed file
// whose pointer never committed) the previous checkpoint reads back
// after a restart, the leftovers are removed, and the next checkpoint
// continues the sequence.
func TestInterruptedCheckpointKeepsThePrevious(t *testing.T) {
	s, path := open(t)
	if err := s.Create(Record{Origin: 5, Digest: "sha256:00"}); err != nil {
		t.Fatal(err)
	}
	first := randomBytes(t, FileThreshold+1)
	seq, err := s.PutSnapshot(5, time.Unix(1, 0), first)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	dir := SnapshotDir(path)
	tmp := filepath.Join(dir, "0000000000000005.123456.tmp")
	uncommitted := filepath.Join(dir, "0000000000000005.2")
	for _, f := range []string{tmp, uncommitted} {
		if err := os.WriteFile(f, []byte("torn"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.LatestSnapshot(5)
	if err != nil || got.Seq != seq || !bytes.Equal(got.Data, first) {
		t.Fatalf("after the crash: seq %d, %d bytes, %v; want seq %d", got.Seq, len(got.Data), err, seq)
	}
	for _, f := range []string{tmp, uncommitted} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left after open: %v", filepath.Base(f), err)
		}
	}
	next := randomBytes(t, FileThreshold+2)
	seq2, err := s2.PutSnapshot(5, time.Unix(2, 0), next)
	if err != nil || seq2 != seq+1 {
		t.Fatalf("next checkpoint: seq %d, %v", seq2, err)
	}
	if got, err := s2.LatestSnapshot(5); err != nil || !bytes.Equal(got.Data, next) {
		t.Fatalf("next checkpoint reads back: %v", err)
	}
}

// TestMissingOrDamagedFileFallsBack: the newest file gone or damaged, the
// previous checkpoint is returned; both gone is ErrCorrupt, never
// ErrNotFound (the daemon had a checkpoint).
func TestMissingOrDamagedFileFallsBack(t *testing.T) {
	s, path := open(t)
	if err := s.Create(Record{Origin: 6, Digest: "sha256:00"}); err != nil {
		t.Fatal(err)
	}
	a, b := randomBytes(t, FileThreshold+10), randomBytes(t, FileThreshold+20)
	seqA, err := s.PutSnapshot(6, time.Unix(1, 0), a)
	if err != nil {
		t.Fatal(err)
	}
	seqB, err := s.PutSnapshot(6, time.Unix(2, 0), b)
	if err != nil {
		t.Fatal(err)
	}
	fileB := s.fileName(6, seqB)
	if err := os.WriteFile(fileB, b[:len(b)/2], 0o600); err != nil { // torn
		t.Fatal(err)
	}
	if got, err := s.LatestSnapshot(6); err != nil || got.Seq != seqA || !bytes.Equal(got.Data, a) {
		t.Fatalf("damaged newest: seq %d, %v; want the previous, seq %d", got.Seq, err, seqA)
	}
	if err := os.Remove(fileB); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LatestSnapshot(6); err != nil || got.Seq != seqA {
		t.Fatalf("missing newest: seq %d, %v; want the previous, seq %d", got.Seq, err, seqA)
	}
	if err := os.Remove(s.fileName(6, seqA)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LatestSnapshot(6); errors.Is(err, ErrNotFound) || err == nil {
		t.Fatalf("both files gone: %v, want an error that is not ErrNotFound", err)
	}
	// Only two files are ever kept, and Delete removes them.
	for i := 0; i < 3; i++ {
		if _, err := s.PutSnapshot(6, time.Now(), b); err != nil {
			t.Fatal(err)
		}
	}
	if fs := snapFiles(t, path); len(fs) != 2 {
		t.Fatalf("files after 3 more checkpoints: %v", fs)
	}
	if err := s.Delete(6); err != nil {
		t.Fatal(err)
	}
	if fs := snapFiles(t, path); len(fs) != 0 {
		t.Fatalf("files after Delete: %v", fs)
	}
}

// TestInlineAndFileSnapshotsShareOneSequence: a daemon whose snapshots
// cross the threshold either way keeps one strictly increasing sequence
// and only the newest form is kept.
func TestInlineAndFileSnapshotsShareOneSequence(t *testing.T) {
	s, path := open(t)
	if err := s.Create(Record{Origin: 7, Digest: "sha256:00"}); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i, n := range []int{10, FileThreshold + 1, 20, FileThreshold + 5, FileThreshold + 6} {
		data := randomBytes(t, n)
		seq, err := s.PutSnapshot(7, time.Unix(int64(i), 0), data)
		if err != nil || seq != last+1 {
			t.Fatalf("put %d: seq %d after %d, %v", i, seq, last, err)
		}
		last = seq
		got, err := s.LatestSnapshot(7)
		if err != nil || got.Seq != seq || !bytes.Equal(got.Data, data) || got.Taken.Unix() != int64(i) {
			t.Fatalf("put %d reads back as seq %d, %d bytes, %v", i, got.Seq, len(got.Data), err)
		}
		if files := snapFiles(t, path); n <= FileThreshold && len(files) != 0 {
			t.Fatalf("inline snapshot left files %v", files)
		}
	}
}
