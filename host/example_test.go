package host_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/wasmesh/wasmesh/host"
)

// Run a daemon in-process: register a module, spawn it, feed it events,
// keep its signed snapshot and bring it back elsewhere under its seed.
func Example() {
	ctx := context.Background()
	module, err := os.ReadFile("../plugins/examples/counter-wat/counter-wat.wasm")
	if err != nil {
		log.Fatal(err)
	}
	rt, err := host.New(ctx, host.Config{Limits: host.Limits{MaxMemoryBytes: 1 << 20}})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.RegisterModule(ctx, module, "counter"); err != nil {
		log.Fatal(err)
	}
	seed := make([]byte, 32) // keep a real one secret: it is the daemon's key
	d, err := rt.Spawn(ctx, "counter", host.SpawnOptions{Name: "c1", Seed: seed})
	if err != nil {
		log.Fatal(err)
	}
	for i, ev := range []string{"a", "b"} {
		outs, err := d.Deliver(ctx, host.Event{Seq: uint64(i + 1), Payload: []byte(ev)})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s -> %s\n", ev, outs[0].Payload)
	}
	snap, err := d.Snapshot(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := rt.Stop(ctx, d.Origin()); err != nil {
		log.Fatal(err)
	}
	back, err := rt.Restore(ctx, "counter", snap, host.SpawnOptions{Seed: seed})
	if err != nil {
		log.Fatal(err)
	}
	outs, err := back.Deliver(ctx, host.Event{Seq: 3, Payload: []byte("get")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("restored %s: get -> %s\n", back.Name(), outs[0].Payload)
	// Output:
	// a -> 1
	// b -> 2
	// restored c1: get -> 2
}
