package driver_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/internal/migration/driver"
)

// A chunk of a pre-copy from a node that is not its source is refused
// before it can change the pre-copy's reservation or state.
func TestPreCopyChunkFromAnotherNode(t *testing.T) {
	c := newCluster(t, 3, fastTiming)
	a, b, x := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	half := bytes.Repeat([]byte{7}, 1000)
	if err := b.Mig.Receive(a.ID, driver.BaseChunk(77, 0, 2, 2000, half)); err != nil {
		t.Fatal(err)
	}
	before := b.Mig.Resources()
	if before.PreCopyIn != 1 || before.StagedBytes != 2000 {
		t.Fatalf("after the first chunk: %+v", before)
	}
	if err := b.Mig.Receive(x.ID, driver.BaseChunk(77, 1, 2, 2000, half)); !errors.Is(err, driver.ErrBadFrame) {
		t.Fatalf("chunk from another node: %v", err)
	}
	if err := b.Mig.Receive(x.ID, driver.RoundChunk(77, 1, half)); !errors.Is(err, driver.ErrBadFrame) {
		t.Fatalf("round from another node: %v", err)
	}
	if after := b.Mig.Resources(); after != before {
		t.Fatalf("resources changed by another node's chunks: %+v, were %+v", after, before)
	}
}
