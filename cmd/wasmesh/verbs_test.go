package main

import (
	"slices"
	"strings"
	"testing"
)

func TestNodeVerbsHelpTeaches(t *testing.T) {
	for _, verb := range []string{"node", "deploy", "spawn", "send", "ps", "nodes", "stats", "stop", "snapshot", "restore", "logs", "demo"} {
		r := wm(t, "", verb, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%s --help: %+v", verb, r)
		}
		if verb != "node" && verb != "demo" && !strings.Contains(r.stdout, "--node URL") {
			t.Errorf("%s --help does not offer --node URL", verb)
		}
	}
}

// These are refused before any node is contacted (--node points nowhere).
func TestNodeVerbsRefuseBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send", "c1", "zz", "--input-format", "hex"}, "payload 1"},
		{[]string{"send", "c1", "x", "--output-format", "rot13"}, "--output-format"},
		{[]string{"send", "c1", "x", "--stdin"}, "not both"},
		{[]string{"send"}, "needs a DAEMON"},
		{[]string{"spawn"}, "exactly one KIND"},
		{[]string{"stats", "a", "b"}, "exactly one DAEMON"},
		{[]string{"ps", "--node", "ftp://x"}, "not an http"},
		{[]string{"deploy", "/nonexistent.wasm"}, "read module"},
		{[]string{"restore", "/nonexistent.snap"}, "read snapshot"},
		{[]string{"node", "--data", "x", "--dev", "--cluster-secret-file", "f"}, "exclusive"},
		{[]string{"node", "--data", "x", "--dev", "--admin", "0.0.0.0:7401"}, "admin-token-file"},
		{[]string{"demo", "--duration", "0s"}, "--duration"},
	} {
		args := tc.args
		if args[0] != "node" && args[0] != "demo" && !slices.Contains(args, "--node") {
			args = append(args, "--node", "http://127.0.0.1:1")
		}
		r := wm(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: want exit 2 and one line with %q, got %+v", tc.args, tc.want, r)
		}
	}
}

func TestUnreachableNodeIsOneLine(t *testing.T) {
	r := wm(t, "", "ps", "--node", "http://127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the node at http://127.0.0.1:1") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("%+v", r)
	}
}
