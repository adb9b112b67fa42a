package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// namesNoRawControls fails when CLI output carries a terminal control
// rune (ESC, BEL, C1 CSI, RTL override) instead of its escape.
func namesNoRawControls(t *testing.T, what, out string) {
	t.Helper()
	if i := strings.IndexAny(out, "\x1b\x07\u009b\u202e\x00"); i >= 0 {
		t.Fatalf("%s prints a raw control rune at byte %d: %q", what, i, out)
	}
}

// namesNode starts a node with counter deployed and returns its admin URL;
// when the test ends the node must be healthy and stop cleanly on SIGTERM.
func namesNode(t *testing.T) string {
	t.Helper()
	p := startNode(t, "alpha", t.TempDir())
	// Registered after startNode's own cleanup, so it runs first.
	t.Cleanup(func() { suiteEnd(t, p) })
	u := p.url()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u)
	return u
}

func TestNamesOutsideTheAlphabetRefused(t *testing.T) {
	u := namesNode(t)

	// Names outside the documented alphabet are refused, in one escaped line.
	for _, name := range []string{"c\x1b[2J\x1b[31m", "evil\u202etxt.exe", "-rf", strings.Repeat("n", 65)} {
		r := cli(t, "", "spawn", "counter", "--name", name, "--node", u)
		if r.code != 2 || strings.Count(strings.TrimRight(r.stderr, "\n"), "\n") != 0 || !strings.Contains(r.stderr, "[A-Za-z0-9._-]") {
			t.Fatalf("spawn --name %q: %s", name, r)
		}
		namesNoRawControls(t, "spawn refusal", r.stderr)
	}
	failsWith(t, 2, "kind name", "deploy", counterWasm(), "--kind", "k\x1b[2J", "--node", u)
	if out := ok(t, "ps", "--json", "--node", u); strings.TrimSpace(out) != "[]" {
		t.Fatalf("a refused spawn left a daemon: %s", out)
	}
}

func TestNamesRestoreRollbackNeedsForce(t *testing.T) {
	u := namesNode(t)
	// Restoring an older snapshot over the running daemon is a rollback:
	// refused unless --force, and the refusal says how far behind.
	ok(t, "spawn", "counter", "--name", "c1", "--node", u)
	ok(t, "send", "c1", "a", "b", "c", "--node", u)
	snap := filepath.Join(t.TempDir(), "c1.snap")
	ok(t, "snapshot", "c1", "-o", snap, "--node", u)
	ok(t, "send", "c1", "d", "e", "f", "g", "h", "i", "j", "--node", u)
	failsWith(t, 2, "7 events behind", "restore", snap, "--node", u)
	failsWith(t, 2, "--force", "restore", snap, "--node", u)
	if got := strings.TrimSpace(ok(t, "send", "c1", "get", "--node", u)); got != "10" {
		t.Fatalf("count after a refused restore = %s, want 10", got)
	}
	ok(t, "restore", snap, "--force", "--node", u)
	if got := strings.TrimSpace(ok(t, "send", "c1", "get", "--node", u)); got != "3" {
		t.Fatalf("count after restore --force = %s, want 3", got)
	}
}

func TestNamesDeployRepointNeedsForce(t *testing.T) {
	u := namesNode(t)
	// Deploying another module under a kind name that is taken is refused
	// (naming what it points at) unless --force.
	digest := strings.TrimSpace(ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u))
	logesc := repoPath("plugins/examples/testdata/logesc.wasm")
	failsWith(t, 1, digest, "deploy", logesc, "--kind", "counter", "--node", u)
	failsWith(t, 1, "--force", "deploy", logesc, "--kind", "counter", "--node", u)
	moved := strings.TrimSpace(ok(t, "deploy", logesc, "--kind", "counter", "--force", "--node", u))
	if moved == digest {
		t.Fatalf("deploy --force printed the old digest")
	}
	ok(t, "spawn", "counter", "--name", "l1", "--node", u)
	if got := strings.TrimSpace(ok(t, "send", "l1", "x", "--node", u)); got != "ok" {
		t.Fatalf("the kind did not move to logesc: send printed %q", got)
	}
}

func TestNamesGuestLogEscaped(t *testing.T) {
	u := namesNode(t)
	// A guest's log line with control bytes is printed escaped.
	ok(t, "deploy", repoPath("plugins/examples/testdata/logesc.wasm"), "--kind", "logesc", "--node", u)
	ok(t, "spawn", "logesc", "--name", "l1", "--node", u)
	ok(t, "spawn", "counter", "--name", "honest", "--node", u)
	ok(t, "send", "l1", "x", "--node", u)
	if got := strings.TrimSpace(ok(t, "send", "honest", "x", "--node", u)); got != "1" {
		t.Fatalf("honest daemon beside logesc answered %q", got)
	}
	out := ok(t, "logs", "l1", "--node", u)
	namesNoRawControls(t, "wasmesh logs", out)
	if !strings.Contains(out, `x\x1b[2J\x1b[31mred\a\u009b\u202eevil`) {
		t.Fatalf("logs do not show the escaped line:\n%s", out)
	}
	namesNoRawControls(t, "wasmesh ps", ok(t, "ps", "--node", u))
}
