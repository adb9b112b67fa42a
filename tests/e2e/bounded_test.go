package e2e

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskStaysBoundedAcrossMigrations is issue 9's "a dozen migrations of
// a 64 MiB daemon leave a 324 MB store.db" as an operator sees it: a
// daemon holding 16 MiB of live state moves back and forth twelve times;
// each node's store (store.db, snapshot files and journal) stays below three
// times that live state, and the daemon's count is intact.
func TestDiskStaysBoundedAcrossMigrations(t *testing.T) {
	const live = 16 << 20
	d1, d2 := t.TempDir(), t.TempDir()
	n1 := startNode(t, "n1", d1)
	n2 := startNode(t, "n2", d2, "--join", n1.info.Gossip)
	ok(t, "deploy", repoPath("plugins/examples/testdata/ballast.wasm"), "--kind", "ballast", "--node", n1.url())
	ok(t, "spawn", "ballast", "--name", "b1", "--on", "n1", "--node", n1.url())
	// A 4-byte little-endian payload n fills n bytes of memory.
	ok(t, "send", "b1", "00000001", "--input-format", "hex", "--node", n1.url())
	ok(t, "send", "b1", "a", "--node", n1.url())
	for i := range 12 {
		to := []string{"n2", "n1"}[i%2]
		ok(t, "migrate", "b1", "--to", to, "--node", n1.url())
		ok(t, "send", "b1", "a", "--node", n1.url())
	}
	for _, d := range []string{d1, d2} {
		got := storeBytes(t, d)
		t.Logf("%s: %d KiB of store, snapshots and journal", d, got>>10)
		if got > 3*live {
			t.Errorf("%s holds %d MiB of store, snapshots and journal after 12 migrations of a %d MiB daemon", d, got>>20, live>>20)
		}
	}
	if got := strings.TrimSpace(ok(t, "send", "b1", "get", "--node", n2.url())); got != "14" {
		t.Fatalf("after 12 migrations b1 counts %s, want 14", got)
	}
}

// storeBytes is what a node keeps of its daemons on disk: the database,
// snapshot files beside it and the journal (not modules or the compilation
// cache, which do not grow with migrations).
func storeBytes(t *testing.T, dataDir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dataDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		top := strings.Split(rel, string(filepath.Separator))[0]
		if e.IsDir() && (top == "modules" || top == "cache") {
			return filepath.SkipDir
		}
		if !e.IsDir() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}
