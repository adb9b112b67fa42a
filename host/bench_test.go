package host_test

import (
	"context"
	"testing"

	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// The public wrapper's cost: the same counter event through host and,
// as the same-run baseline, straight through the engine.
func BenchmarkDeliverInto(b *testing.B) {
	ctx := context.Background()
	rt := newRuntime(b)
	d, err := rt.Spawn(ctx, "counter", host.SpawnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var out host.Outputs
	ev := host.Event{Payload: []byte("a")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Seq = uint64(i + 1)
		if err := d.DeliverInto(ctx, ev, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEngineDeliverInto(b *testing.B) {
	ctx := context.Background()
	rt, err := engine.New(ctx, engine.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.RegisterModule(ctx, counterModule(b), "counter"); err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	id, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	d, err := rt.Spawn(ctx, "counter", id, engine.SpawnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var out engine.Outputs
	ev := engine.Event{Payload: []byte("a")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Seq = uint64(i + 1)
		if err := d.DeliverInto(ctx, ev, &out); err != nil {
			b.Fatal(err)
		}
	}
}
