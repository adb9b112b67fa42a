package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func keygen(t *testing.T, path string) string {
	t.Helper()
	r := wm(t, "", "token", "keygen", "-o", path)
	pub := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(pub) != 64 {
		t.Fatalf("keygen: %+v", r)
	}
	return pub
}

func TestTokenIssueDelegateInspect(t *testing.T) {
	dir := t.TempDir()
	at := func(n string) string { return filepath.Join(dir, n) }
	ops := keygen(t, at("ops.key"))
	keygen(t, at("client.key"))
	daemon := keygen(t, at("daemon.key"))
	if fi, err := os.Stat(at("ops.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	if r := wm(t, "", "token", "keygen", "-o", at("ops.key")); r.code != 2 || !strings.Contains(r.stderr, "never overwrites") {
		t.Fatalf("overwrite: %+v", r)
	}

	r := wm(t, "", "token", "issue", "--key", at("ops.key"), "--subject", at("client.key"), "--scope", "subscribe,delegate", "--channel", "orders/*", "-o", at("client.tok"))
	if r.code != 0 || !strings.Contains(r.stdout, "subscribe,delegate") {
		t.Fatalf("issue: %+v", r)
	}
	r = wm(t, "", "token", "delegate", "--token", at("client.tok"), "--key", at("client.key"), "--subject", daemon, "--scope", "subscribe", "--channel", "orders/eu", "--ttl", "1h", "-o", at("d.tok"))
	if r.code != 0 {
		t.Fatalf("delegate: %+v", r)
	}

	r = wm(t, "", "token", "inspect", at("d.tok"), "--json", "--verify-trust", ops)
	var out inspectOut
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
		t.Fatalf("inspect: %+v", r)
	}
	if out.Subject != daemon || out.Depth != 2 || len(out.Chain) != 2 || out.Chain[1].Issuer != ops || out.Channel != "orders/eu" || out.Expired || out.Verified == nil || !*out.Verified {
		t.Fatalf("inspect: %+v", out)
	}

	r = wm(t, "", "token", "inspect", at("d.tok"))
	if r.code != 0 || !strings.Contains(r.stdout, "chain    2 tokens") || !strings.Contains(r.stdout, "valid now") {
		t.Fatalf("inspect text: %+v", r)
	}
	// Trusting another key fails the verification, in one line.
	r = wm(t, "", "token", "inspect", at("d.tok"), "--verify-trust", daemon)
	if r.code != 1 || !strings.Contains(r.stderr, "root issuer not trusted") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("untrusted: %+v", r)
	}
}

func TestTokenRefusesBadUsage(t *testing.T) {
	dir := t.TempDir()
	at := func(n string) string { return filepath.Join(dir, n) }
	keygen(t, at("ops.key"))
	other := keygen(t, at("other.key"))
	if r := wm(t, "", "token", "issue", "--key", at("ops.key"), "--subject", other, "--scope", "subscribe", "--channel", "orders/eu", "-o", at("narrow.tok")); r.code != 0 {
		t.Fatalf("issue: %+v", r)
	}
	if err := os.WriteFile(at("junk.tok"), []byte("wasmesh-token-v1:AQ\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--key", at("ops.key"), "--subject", other}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "issue", "--key", at("ops.key"), "--subject", other, "--scope", "root", "--channel", "x"}, "unknown scope"},
		{append([]string{"token", "issue", "--scope", "subscribe", "--channel", "Orders"}, base...), "--channel"},
		{append([]string{"token", "issue", "--scope", "subscribe", "--channel", "x", "--not-before", "tuesday"}, base...), "--not-before"},
		{append([]string{"token", "issue", "--scope", "subscribe", "--channel", "x", "--ttl", "-1h"}, base...), "--ttl"},
		{[]string{"token", "issue", "--key", at("ops.key"), "--subject", "nothex", "--scope", "subscribe", "--channel", "x", "--node", "http://127.0.0.1:1"}, "not a 64-hex key or a key file"},
		{[]string{"token", "issue", "--key", at("missing.key"), "--subject", other, "--scope", "subscribe", "--channel", "x"}, "read key"},
		{[]string{"token", "delegate", "--token", at("narrow.tok"), "--key", at("other.key"), "--subject", other, "--scope", "subscribe", "--channel", "orders/eu"}, "delegate scope"},
		{[]string{"token", "inspect", at("junk.tok")}, "truncated"},
		{[]string{"token", "inspect"}, "exactly one FILE"},
		{[]string{"token", "keygen"}, "out"},
	} {
		r := wm(t, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: want exit 2 and one line with %q, got %+v", tc.args, tc.want, r)
		}
	}
}

func TestTokenHelpTeaches(t *testing.T) {
	for _, verb := range []string{"keygen", "issue", "delegate", "inspect"} {
		r := wm(t, "", "token", verb, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("token %s --help: %+v", verb, r)
		}
	}
	if r := wm(t, "", "token", "issue", "--help"); !strings.Contains(r.stdout, "entity id") {
		t.Errorf("issue --help does not explain the subject: %s", r.stdout)
	}
}
