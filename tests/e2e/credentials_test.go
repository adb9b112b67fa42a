package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProductionCredentials runs a cluster without --dev: credentials made
// by `wasmesh cluster init`, one node issuing its own certificate from the
// CA directory, another given only a pre-issued certificate, and a node of
// another cluster that cannot join or be reached.
func TestProductionCredentials(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	out := ok(t, "cluster", "init", caDir)
	if !strings.Contains(out, "cluster.secret") {
		t.Fatalf("cluster init printed %q", out)
	}
	if fi, err := os.Stat(filepath.Join(caDir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v", fi, err)
	}
	failsWith(t, 2, "already exists", "cluster", "init", caDir)
	secret := filepath.Join(caDir, "cluster.secret")

	bData := t.TempDir()
	if got := ok(t, "cluster", "issue", "--ca", caDir, "--data", bData); !strings.Contains(got, "node.crt") {
		t.Fatalf("cluster issue printed %q", got)
	}
	a := startNode(t, "alpha", t.TempDir(), "--cluster-secret-file", secret, "--ca", caDir)
	b := startNode(t, "beta", bData, "--cluster-secret-file", secret, "--join", a.info.Gossip)
	eventually(t, 15*time.Second, "beta sees alpha", func() (bool, string) {
		r := cli(t, "", "nodes", "--node", b.url())
		return r.code == 0 && strings.Contains(r.stdout, "alpha") && strings.Count(r.stdout, "alive") == 2, r.String()
	})
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "c", "--on", "beta", "--node", a.url())
	if got := ok(t, "send", "c", "x", "--node", a.url()); got != "1\n" {
		t.Fatalf("send across the authenticated mesh = %q", got)
	}

	// A node of another cluster: its own CA and secret.
	otherCA := filepath.Join(t.TempDir(), "other")
	ok(t, "cluster", "init", otherCA)
	r := cli(t, "", "node", "--data", t.TempDir(), "--name", "mallory", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--cluster-secret-file", filepath.Join(otherCA, "cluster.secret"), "--ca", otherCA, "--join", a.info.Gossip)
	if r.code == 0 || !strings.Contains(r.stderr, "--join") {
		t.Fatalf("a node of another cluster joined: %s", r)
	}
	// A node without any credential is refused with advice.
	failsWith(t, 2, "--cluster-secret-file", "node", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", "127.0.0.1:0")
}
