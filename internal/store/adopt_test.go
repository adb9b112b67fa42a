package store

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

func TestAdoptRecordsWithSnapshot(t *testing.T) {
	s, _ := open(t)
	r := Record{Origin: 7, Name: "c1", Digest: "sha256:ab", Seed: bytes.Repeat([]byte{1}, 32), Epoch: 2, Created: time.Unix(5, 0).UTC()}
	seq, err := s.Adopt(r, time.Unix(10, 0), []byte("state-1"))
	if err != nil || seq != 1 {
		t.Fatalf("adopt: seq %d, %v", seq, err)
	}
	got, err := s.Get(7)
	if err != nil || got.Name != "c1" || got.Epoch != 2 {
		t.Fatalf("record %+v, %v", got, err)
	}
	snap, err := s.LatestSnapshot(7)
	if err != nil || string(snap.Data) != "state-1" || snap.Seq != 1 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	// Back again after a stay elsewhere: replaced, sequence continues.
	r.Epoch = 3
	if seq, err := s.Adopt(r, time.Unix(20, 0), []byte("state-2")); err != nil || seq != 2 {
		t.Fatalf("re-adopt: seq %d, %v", seq, err)
	}
	if snap, _ := s.LatestSnapshot(7); string(snap.Data) != "state-2" {
		t.Fatalf("snapshot after re-adopt %q", snap.Data)
	}
	// A name another running daemon holds refuses the whole adoption.
	other := Record{Origin: 8, Name: "c1", Digest: "sha256:ab", Seed: bytes.Repeat([]byte{2}, 32)}
	if _, err := s.Adopt(other, time.Now(), []byte("x")); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("name clash: %v", err)
	}
	if _, err := s.Get(8); !errors.Is(err, ErrNotFound) {
		t.Fatal("refused adoption left a record")
	}
	if _, err := s.LatestSnapshot(8); !errors.Is(err, ErrNotFound) {
		t.Fatal("refused adoption left a snapshot")
	}
}

// A large first checkpoint goes to a file like any other large one, and
// an arrival replaces whatever files an earlier stay left.
func TestAdoptLargeSnapshotIsAFile(t *testing.T) {
	s, path := open(t)
	r := Record{Origin: 9, Name: "big", Digest: "sha256:ab", Seed: bytes.Repeat([]byte{3}, 32)}
	big := bytes.Repeat([]byte{7}, FileThreshold+1)
	for i := range 3 {
		big[0] = byte(i)
		seq, err := s.Adopt(r, time.Now(), big)
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("adopt %d: seq %d, %v", i, seq, err)
		}
		snap, err := s.LatestSnapshot(9)
		if err != nil || !bytes.Equal(snap.Data, big) {
			t.Fatalf("adopt %d: latest %d bytes, %v", i, len(snap.Data), err)
		}
	}
	files, err := os.ReadDir(SnapshotDir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("%d snapshot files after three arrivals, want 1", len(files))
	}
	// Back to a small checkpoint: the file goes.
	if _, err := s.PutSnapshot(9, time.Now(), []byte("small")); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(SnapshotDir(path)); len(files) != 0 {
		t.Fatalf("%d snapshot files after a small checkpoint", len(files))
	}
}
