package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/node"
)

// TestTokenForADaemonByName: `token issue --subject NAME` asks the node for
// the daemon's entity id; the token names that identity, which is the same
// after the daemon migrates, so the grant follows it to its new node.
func TestTokenForADaemonByName(t *testing.T) {
	a, b := twoNodes(t)
	dir := t.TempDir()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "sub1", "--node", a.url())
	ops := filepath.Join(dir, "ops.key")
	issuer := strings.TrimSpace(ok(t, "token", "keygen", "-o", ops))
	tok := filepath.Join(dir, "sub1.tok")
	ok(t, "token", "issue", "--key", ops, "--subject", "sub1", "--scope", "subscribe", "--channel", "orders/*", "-o", tok, "--node", b.url())

	var ins struct {
		Issuer  string `json:"issuer"`
		Subject string `json:"subject"`
	}
	if err := json.Unmarshal([]byte(ok(t, "token", "inspect", tok, "--json", "--verify-trust", issuer)), &ins); err != nil {
		t.Fatal(err)
	}
	entity := func() string {
		var d node.DaemonInfo
		if err := json.Unmarshal([]byte(ok(t, "stats", "sub1", "--json", "--node", b.url())), &d); err != nil {
			t.Fatal(err)
		}
		return d.Entity
	}
	before := entity()
	if len(before) != 64 || ins.Subject != before {
		t.Fatalf("token subject %q, daemon entity %q: want the same 64-hex id", ins.Subject, before)
	}
	if ins.Issuer != issuer {
		t.Fatalf("token issuer %q, keygen printed %q", ins.Issuer, issuer)
	}
	ok(t, "migrate", "sub1", "--to", "beta", "--node", a.url())
	if after := entity(); after != before {
		t.Fatalf("entity changed across the migration: %q then %q", before, after)
	}
	r := cli(t, "", "token", "issue", "--key", ops, "--subject", "nosuchdaemon", "--scope", "subscribe", "--channel", "orders/*", "--node", a.url())
	if r.code != 2 || !strings.Contains(r.stderr, "not a daemon the node knows") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("unknown daemon as subject: %s", r.String())
	}
}
