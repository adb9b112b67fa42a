package main

import (
	"strings"
	"testing"
)

func TestDrainHelpTeaches(t *testing.T) {
	for _, verb := range []string{"drain", "undrain"} {
		r := wm(t, "", "node", verb, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--node URL") {
			t.Errorf("node %s --help: %+v", verb, r)
		}
	}
}

// Refused before any node is contacted; flags after NODE are read too
// (the --parallel case fails on its value, not on the argument count).
func TestDrainRefusesBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "drain"}, "exactly one NODE"},
		{[]string{"node", "drain", "n1", "n2"}, "exactly one NODE"},
		{[]string{"node", "drain", "n1", "--parallel", "0"}, "--parallel 0"},
		{[]string{"node", "drain", "n1", "--to", "n2", "--require", "gpu"}, "at most one"},
		{[]string{"node", "undrain"}, "exactly one NODE"},
		{[]string{"node", "--dev"}, "needs --data"},
	} {
		args := tc.args
		if args[1] == "drain" || args[1] == "undrain" {
			args = append(args, "--node", "http://127.0.0.1:1")
		}
		r := wm(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: want exit 2 and one line with %q, got %+v", tc.args, tc.want, r)
		}
	}
	if r := wm(t, "", "node", "drain", "n1", "--node", "http://127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach") {
		t.Errorf("unreachable node: %+v", r)
	}
}
