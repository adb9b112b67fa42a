package store

import (
	"bytes"
	"errors"
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
