package node

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestMigrateProgressIsRelayed: a migration asked of a node that does not
// host the daemon shows the host's phases, starting with the pre-copy of
// a large daemon and ending with complete; the result keeps the pre-copy's
// bytes apart from the final snapshot's.
func TestMigrateProgressIsRelayed(t *testing.T) {
	ctx := context.Background()
	mod, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testdata", "ballast.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, mod, "ballast"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "ballast", Name: "big"}); err != nil {
		t.Fatal(err)
	}
	// 4 MiB of live state: above the pre-copy threshold.
	if _, err := a.Send(ctx, "big", binary.LittleEndian.AppendUint32(nil, 4<<20)); err != nil {
		t.Fatal(err)
	}
	var got []MigrateProgress
	res, err := b.Migrate(ctx, MigrateRequest{Ref: "big", To: "b"}, func(p MigrateProgress) { got = append(got, p) })
	if err != nil {
		t.Fatalf("migrate through b: %v", err)
	}
	var phases []string
	for _, p := range got {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	if len(phases) < 2 || phases[0] != PhasePreCopy || phases[len(phases)-1] != "complete" {
		t.Fatalf("phases relayed through b: %v", phases)
	}
	if got[0].MemoryBytes < 4<<20 {
		t.Fatalf("pre-copy progress does not say how much memory: %+v", got[0])
	}
	if !res.PreCopied || res.PreCopyBytes == 0 || res.From != "a" || res.To != "b" {
		t.Fatalf("result %+v", res)
	}
	if res.WireBytes == 0 || res.SnapshotBytes == 0 {
		t.Fatalf("result has no wire or snapshot size: %+v", res)
	}
}
