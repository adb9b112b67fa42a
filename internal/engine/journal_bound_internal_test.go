package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmesh/wasmesh/internal/identity"
)

// The rollback journal is a hard bound: after every committed event it
// holds less than journalMaxBytes (the checkpoint refresh clears it), so
// at most journalMaxBytes + one event's input and readings at any moment.
func TestJournalBytesBounded(t *testing.T) {
	ctx := context.Background()
	mod, err := os.ReadFile(filepath.Join("..", "..", "plugins", "examples", "testdata", "entropy.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.RegisterModule(ctx, mod, "entropy"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	d, err := rt.Spawn(ctx, "entropy", id, SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 60<<10) // under entropy's 64512-byte input buffer
	most := 0
	for i := 0; i < 1000; i++ {
		if _, err := d.Deliver(ctx, Event{Sender: 1, Seq: uint64(i + 1), Payload: payload}); err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		n := len(d.journal.arena)
		d.mu.Unlock()
		if n >= journalMaxBytes {
			t.Fatalf("event %d: journal holds %d bytes, want < %d", i, n, journalMaxBytes)
		}
		most = max(most, n)
	}
	if most < journalMaxBytes-len(payload)-64 {
		t.Fatalf("the journal peaked at %d bytes: the test never reached its bound", most)
	}
}
