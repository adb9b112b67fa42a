package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// A table.grow of 64M entries per event is refused the spec's way (-1) once
// it would pass the table share of the memory cap, instead of allocating
// gigabytes of host memory; the daemon keeps serving.
func TestTableBombCapped(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"tb": fixture(t, "table_bomb.wasm")})
	d := spawn(t, rt, "tb", engine.SpawnOptions{Limits: engine.Limits{MaxMemoryBytes: 1 << 20}})
	for i := 0; i < 3; i++ {
		got := send(t, d, "x")
		if len(got) != 1 || len(got[0]) != 4 {
			t.Fatalf("event %d: outputs %q", i, got)
		}
		if r := int32(binary.LittleEndian.Uint32([]byte(got[0]))); r != -1 {
			t.Fatalf("event %d: table.grow of 64M entries returned %d under a 1 MiB cap, want -1", i, r)
		}
	}
}

func TestTableEntriesFollowMemoryCap(t *testing.T) {
	if got := engine.TableEntries(16); got != 16*65536/engine.TableEntryBytes {
		t.Fatalf("TableEntries(16) = %d", got)
	}
	if engine.TableEntries(0) != 0 {
		t.Fatal("no memory cap must mean no table cap")
	}
}

// random(ptr, 64 MiB) twenty times in one event fails that event with
// ErrReadingsLimit at the first call (nothing read, nothing journaled), it
// is rolled back, and the daemon serves its next events.
func TestRandomBombFailsEvent(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"rb": fixture(t, "random_bomb.wasm")})
	// The bomb grows memory by 64 MiB first, which under -race on a loaded
	// machine took over the default 1 s budget: this test is about the cap.
	d := spawn(t, rt, "rb", engine.SpawnOptions{Limits: engine.Limits{MaxMemoryBytes: 128 << 20, EventTimeout: time.Minute}})
	count := func(want uint64) {
		t.Helper()
		got := send(t, d, "x")
		if len(got) != 1 || binary.LittleEndian.Uint64([]byte(got[0])) != want {
			t.Fatalf("count %q, want %d", got, want)
		}
	}
	count(1)
	for i := 0; i < 3; i++ {
		_, err := d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: uint64(10 + i), Payload: []byte("bomb")})
		var ee *engine.EventError
		if !errors.Is(err, engine.ErrReadingsLimit) || !errors.As(err, &ee) || !ee.RolledBack {
			t.Fatalf("bomb %d: err = %v, want a rolled-back ErrReadingsLimit", i, err)
		}
	}
	count(2)
	if st := d.Stats(); st.MemoryBytes > 2*65536 {
		t.Fatalf("memory after rolled-back bombs = %d bytes, want the 1 page before them", st.MemoryBytes)
	}
}

// Readings up to the cap are served: a per-event cap of exactly 64 MiB lets
// one 64 MiB random call through and refuses the second.
func TestReadingsCapIsExact(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"rb": fixture(t, "random_bomb.wasm")})
	// A budget the 64 MiB read fits in even under the race detector: this
	// test is about the readings cap, not the CPU budget.
	d := spawn(t, rt, "rb", engine.SpawnOptions{Limits: engine.Limits{MaxMemoryBytes: 128 << 20, MaxReadingsBytes: 64 << 20, EventTimeout: time.Minute}})
	_, err := d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: 1, Payload: []byte("bomb")})
	if !errors.Is(err, engine.ErrReadingsLimit) {
		t.Fatalf("err = %v, want ErrReadingsLimit", err)
	}
	if want := "67108864 more clock/random bytes after 67108864"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to say %q (the first call was served)", err, want)
	}
}

// The readings cap covers every source a guest can read: WASI random_get
// and the clock, not only wasmesh.random.
func TestReadingsCapAllSources(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"rd": fixture(t, "readings_bomb.wasm")})
	d := spawn(t, rt, "rd", engine.SpawnOptions{})
	for i, p := range []string{"wasi", "time"} {
		_, err := d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: uint64(1 + i), Payload: []byte(p)})
		var ee *engine.EventError
		if !errors.Is(err, engine.ErrReadingsLimit) || !errors.As(err, &ee) || !ee.RolledBack {
			t.Fatalf("%s: err = %v, want a rolled-back ErrReadingsLimit", p, err)
		}
	}
	if got := send(t, d, "x"); len(got) != 1 || binary.LittleEndian.Uint64([]byte(got[0])) != 1 {
		t.Fatalf("next event: %q, want count 1", got)
	}
}
