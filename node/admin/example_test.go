package admin_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// A program that drives a node the way the CLI does: deploy, spawn, send,
// migrate. Errors match the node's sentinels (errors.Is) on the client.
func ExampleClient() {
	ctx := context.Background()
	c, err := admin.NewClient("http://127.0.0.1:7401", os.Getenv("WASMESH_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	mod, err := os.Open("plugins/examples/counter-go/counter-go.wasm")
	if err != nil {
		log.Fatal(err)
	}
	defer mod.Close()
	if _, err := c.Deploy(ctx, mod, "counter"); err != nil {
		log.Fatal(err)
	}
	d, err := c.Spawn(ctx, admin.SpawnRequest{Kind: "counter", Name: "c1"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Send(ctx, d.ID, []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s on %s: %q\n", res.Daemon, res.Node, res.Outputs)
	mig, err := c.Migrate(ctx, "c1", admin.MigrateBody{Require: "zone=eu-1"}, func(p admin.MigrateProgress) {
		fmt.Println(p.Phase, p.BytesSent)
	})
	switch {
	case errors.Is(err, node.ErrNoMatch):
		fmt.Println("no node in zone eu-1")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Printf("moved to %s, paused %.1f ms\n", mig.To, mig.PauseMillis)
	}
}
