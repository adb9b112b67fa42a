package protocol

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

func TestSplitAndReassemble(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10)
	for _, size := range []int{1, 7, 100, 1000} {
		chunks := Split(h1, 1, 3, data, size)
		r := NewReassembler(1<<20, 1<<20)
		if err := r.Begin(1, 3, chunks[0].Count, uint64(len(data))); err != nil {
			t.Fatal(err)
		}
		var got []byte
		// Reverse order and a duplicate: order does not matter, repeats are no-ops.
		for i := len(chunks) - 1; i >= 0; i-- {
			out, done, err := r.Add(chunks[i])
			if err != nil {
				t.Fatal(err)
			}
			if i == len(chunks)-1 && len(chunks) > 1 {
				if _, _, err := r.Add(chunks[i]); err != nil {
					t.Fatalf("duplicate: %v", err)
				}
			}
			if done {
				got = out
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: reassembled %d bytes", size, len(got))
		}
		if r.Pending() != 0 {
			t.Fatalf("memory not released: %d", r.Pending())
		}
	}
}

func TestEmptySnapshotReassembles(t *testing.T) {
	chunks := Split(h1, 1, 1, nil, 8)
	r := NewReassembler(10, 10)
	if len(chunks) != 1 || r.Begin(1, 1, 1, 0) != nil {
		t.Fatalf("empty snapshot: %d chunks", len(chunks))
	}
	out, done, err := r.Add(chunks[0])
	if err != nil || !done || len(out) != 0 {
		t.Fatalf("got %v %v %v", out, done, err)
	}
}

func TestReassemblyRejects(t *testing.T) {
	data := []byte("abcdefgh")
	chunks := Split(h1, 1, 5, data, 4)
	fresh := func() *Reassembler {
		r := NewReassembler(100, 100)
		if err := r.Begin(1, 5, 2, 8); err != nil {
			t.Fatal(err)
		}
		return r
	}
	mod := func(f func(*wire.SnapshotChunk)) wire.SnapshotChunk {
		c := chunks[0]
		f(&c)
		return c
	}
	cases := map[string]struct {
		c    wire.SnapshotChunk
		want error
	}{
		"older generation": {mod(func(c *wire.SnapshotChunk) { c.SnapshotSeq = 4 }), ErrStaleChunk},
		"newer generation": {mod(func(c *wire.SnapshotChunk) { c.SnapshotSeq = 6 }), ErrGenerationMismatch},
		"count mismatch":   {mod(func(c *wire.SnapshotChunk) { c.Count = 3 }), ErrChunkCount},
		"total mismatch":   {mod(func(c *wire.SnapshotChunk) { c.TotalBytes = 9 }), ErrChunkCount},
		"unknown daemon":   {mod(func(c *wire.SnapshotChunk) { c.Origin = 2 }), ErrNoReassembly},
		"too much data":    {mod(func(c *wire.SnapshotChunk) { c.Data = []byte("abcdefghi") }), ErrSnapshotTooLarge},
	}
	for name, tc := range cases {
		r := fresh()
		if _, _, err := r.Add(tc.c); !errors.Is(err, tc.want) || !errors.Is(err, ErrChunk) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	r := fresh()
	r.Add(chunks[0])
	if _, _, err := r.Add(mod(func(c *wire.SnapshotChunk) { c.Data = []byte("zzzz") })); !errors.Is(err, ErrChunkConflict) {
		t.Errorf("conflict: %v", err)
	}
	if _, done, err := r.Add(chunks[1]); !done || err != nil {
		t.Fatalf("complete: %v", err)
	}
	if _, _, err := r.Add(chunks[1]); !errors.Is(err, ErrStaleChunk) {
		t.Errorf("chunk after completion: %v", err)
	}
	if err := r.Begin(1, 5, 2, 8); !errors.Is(err, ErrStaleChunk) {
		t.Errorf("restart of a completed generation: %v", err)
	}
	r = fresh()
	r.Add(mod(func(c *wire.SnapshotChunk) { c.Data = []byte("ab") }))
	if _, _, err := r.Add(chunks[1]); !errors.Is(err, ErrChunkCount) {
		t.Errorf("short total: %v", err)
	}
}

func TestReassemblyMemoryCap(t *testing.T) {
	r := NewReassembler(100, 150)
	if err := r.Begin(1, 1, 1, 101); !errors.Is(err, ErrSnapshotTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if err := r.Begin(1, 1, 1, 100); err != nil {
		t.Fatal(err)
	}
	if err := r.Begin(2, 1, 1, 60); !errors.Is(err, ErrReassemblyFull) {
		t.Fatalf("over the cap: %v", err)
	}
	if err := r.Begin(1, 2, 1, 100); err != nil || r.Pending() != 100 {
		t.Fatalf("a newer generation replaces the old reservation: %v, pending %d", err, r.Pending())
	}
	if err := r.Begin(1, 1, 1, 100); !errors.Is(err, ErrStaleChunk) {
		t.Fatalf("older generation after newer: %v", err)
	}
	r.Drop(1)
	if err := r.Begin(2, 1, 1, 60); err != nil || r.Pending() != 60 {
		t.Fatalf("after drop: %v, pending %d", err, r.Pending())
	}
}
