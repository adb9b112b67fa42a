package store

import (
	"path/filepath"
	"testing"
)

func TestDrainingPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if on, err := s.Draining(); err != nil || on {
		t.Fatalf("fresh store draining=%v err=%v", on, err)
	}
	if err := s.SetDraining(true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	if on, err := s.Draining(); err != nil || !on {
		t.Fatalf("after reopen draining=%v err=%v, want true", on, err)
	}
	if err := s.SetDraining(false); err != nil {
		t.Fatal(err)
	}
	if on, err := s.Draining(); err != nil || on {
		t.Fatalf("after undrain draining=%v err=%v", on, err)
	}
	s.Close()
}
