package engine_test

import (
	"context"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// Deliver recycles the buffers it collects into, so what it returns must
// be a copy: outputs stay intact across later events, and a caller that
// appends to a payload gets its own array rather than writing into one
// the next event reuses.
func TestDeliverOutputsOwnedByCaller(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{
		"echo":    example(t, "echo-wat", "echo-wat.wasm"),
		"ballast": fixture(t, "ballast.wasm"),
	})
	echo := spawn(t, rt, "echo", engine.SpawnOptions{})
	ctx := context.Background()
	var kept [][]engine.Output
	for _, p := range []string{"first", "second", "third-longer"} {
		outs, err := echo.Deliver(ctx, engine.Event{Payload: []byte(p)})
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != 1 || cap(outs[0].Payload) != len(outs[0].Payload) {
			t.Fatalf("%s: outputs %v (cap %d), want one payload capped at its length", p, outs, cap(outs[0].Payload))
		}
		kept = append(kept, outs)
		_ = append(outs[0].Payload, "XXXXXXXXXXXXXXXX"...)
	}
	for i, want := range []string{"first", "second", "third-longer"} {
		if got := string(kept[i][0].Payload); got != want {
			t.Fatalf("output %d = %q after later events, want %q", i, got, want)
		}
		if kept[i][0].Link.Sequence != uint64(i+1) {
			t.Fatalf("output %d link sequence %d", i, kept[i][0].Link.Sequence)
		}
	}
	quiet := spawn(t, rt, "ballast", engine.SpawnOptions{})
	outs, err := quiet.Deliver(ctx, engine.Event{Payload: []byte{0, 0, 0, 0}})
	if err != nil || outs != nil {
		t.Fatalf("event without outputs: %v, %v; want nil, nil", outs, err)
	}
}
