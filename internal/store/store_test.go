package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestFileModeProtectsSeeds(t *testing.T) {
	_, path := open(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("store.db mode %v, want 0600 (it holds daemon seeds)", fi.Mode().Perm())
	}
}

func TestRecordRoundTripAndReopen(t *testing.T) {
	s, path := open(t)
	r := Record{Origin: 42, Name: "c1", Digest: "sha256:ab", Seed: bytes.Repeat([]byte{7}, 32), Config: []byte("cfg"),
		Limits: Limits{MaxMemoryBytes: 1 << 20, EventTimeout: time.Second}, Epoch: 3, Created: time.Unix(100, 0).UTC()}
	if err := s.Create(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(r); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Get(42)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "c1" || !bytes.Equal(got.Seed, r.Seed) || string(got.Config) != "cfg" || got.Limits != r.Limits || got.Epoch != 3 || !got.Created.Equal(r.Created) {
		t.Fatalf("reopened record = %+v", got)
	}
	if _, err := s2.Get(43); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
}

func TestNamesUniqueAmongRunning(t *testing.T) {
	s, _ := open(t)
	if err := s.Create(Record{Origin: 1, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(Record{Origin: 2, Name: "x"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name: %v, want ErrNameTaken", err)
	}
	if err := s.Create(Record{Origin: 3}); err != nil {
		t.Fatalf("unnamed daemons never clash: %v", err)
	}
	if err := s.Create(Record{Origin: 4}); err != nil {
		t.Fatalf("unnamed daemons never clash: %v", err)
	}
	// A stopped daemon frees its name; reviving it re-checks.
	if err := s.Update(1, func(r *Record) error { r.Stopped = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(Record{Origin: 2, Name: "x"}); err != nil {
		t.Fatalf("name of a stopped daemon: %v", err)
	}
	err := s.Update(1, func(r *Record) error { r.Stopped = false; return nil })
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("reviving onto a taken name: %v, want ErrNameTaken", err)
	}
	if r, _ := s.Get(1); !r.Stopped {
		t.Fatal("a refused update must not be written")
	}
}

func TestSnapshotSequenceStrictlyIncreases(t *testing.T) {
	s, _ := open(t)
	if _, err := s.PutSnapshot(9, time.Now(), []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot without record: %v", err)
	}
	if _, err := s.LatestSnapshot(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("latest without any: %v", err)
	}
	if err := s.Create(Record{Origin: 9}); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i, data := range []string{"one", "two", "three"} {
		seq, err := s.PutSnapshot(9, time.Unix(int64(i), 0), []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last {
			t.Fatalf("sequence %d after %d", seq, last)
		}
		last = seq
	}
	got, err := s.LatestSnapshot(9)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != last || string(got.Data) != "three" || got.Taken.Unix() != 2 {
		t.Fatalf("latest = %+v", got)
	}
	if err := s.Delete(9); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LatestSnapshot(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot survived delete: %v", err)
	}
}

func TestAliasesAndRecords(t *testing.T) {
	s, _ := open(t)
	s.SetAlias("b", "sha256:2")
	s.SetAlias("a", "sha256:1")
	s.SetAlias("a", "sha256:3")
	m, err := s.Aliases()
	if err != nil {
		t.Fatal(err)
	}
	sorted := SortedAliases(m)
	if len(sorted) != 2 || sorted[0] != [2]string{"a", "sha256:3"} || sorted[1] != [2]string{"b", "sha256:2"} {
		t.Fatalf("aliases = %v", sorted)
	}
	for _, o := range []uint64{5, 1, 3} {
		s.Create(Record{Origin: o})
	}
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Origin != 1 || recs[2].Origin != 5 {
		t.Fatalf("records = %+v", recs)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	_, path := open(t)
	if _, err := Open(path); err == nil {
		t.Fatal("a second process on the same data dir must be refused")
	}
}
