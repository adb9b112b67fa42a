package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// TestExitStatusFollowsTheErrorTable: for every row of the node's error
// table, a node answering with it makes the CLI print its message once and
// exit with the row's status.
func TestExitStatusFollowsTheErrorTable(t *testing.T) {
	for _, c := range node.ErrorClasses() {
		msg := "node: the reason for " + c.Code
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.HTTP)
			_ = json.NewEncoder(w).Encode(admin.Error{Message: msg, Code: c.Code})
		}))
		r := wm(t, "", "stats", "c1", "--node", srv.URL)
		srv.Close()
		if r.code != c.Exit || r.stderr != "wasmesh: "+msg+"\n" {
			t.Errorf("%s: want exit %d and %q, got %+v", c.Code, c.Exit, msg, r)
		}
	}
}

// psServer answers GET /v1/daemons with res.
func psServer(t *testing.T, res admin.PsResponse) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(res)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPsPartialListing: a node that did not answer makes ps warn and exit
// 1 after listing everything; a node that left cleanly only warns.
func TestPsPartialListing(t *testing.T) {
	live := node.DaemonInfo{ID: "00000000000000aa", Name: "a1", Node: "n1", Status: node.StatusRunning}
	u := psServer(t, admin.PsResponse{Daemons: []node.DaemonInfo{
		live,
		{ID: "00000000000000bb", Name: "c1", Node: "n2", Status: node.StatusUnreachable},
		{Node: "n3", Status: node.StatusUnreachable},
	}, Unreachable: []string{"n2", "n3"}})
	r := wm(t, "", "ps", "--node", u)
	if r.code != 1 || !strings.Contains(r.stdout, "00000000000000bb  c1") || !strings.Contains(r.stdout, "unreachable") ||
		!strings.Contains(r.stderr, "warning: node n2 did not answer; its 1 daemon(s)") ||
		!strings.Contains(r.stderr, "warning: node n3 did not answer, and nothing is known") {
		t.Fatalf("%+v", r)
	}
	r = wm(t, "", "ps", "--json", "--node", u)
	var rows []node.DaemonInfo
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &rows) != nil || len(rows) != 3 || rows[2].Status != node.StatusUnreachable {
		t.Fatalf("--json: %+v", r)
	}

	u = psServer(t, admin.PsResponse{Daemons: []node.DaemonInfo{
		live, {ID: "00000000000000bb", Name: "c1", Node: "n2", Status: node.StatusOffline},
	}, Unreachable: []string{"n2"}})
	r = wm(t, "", "ps", "--node", u)
	if r.code != 0 || !strings.Contains(r.stdout, "offline") || !strings.Contains(r.stderr, "warning: node n2 left the cluster") {
		t.Fatalf("offline: %+v", r)
	}
	r = wm(t, "", "ps", "--node", psServer(t, admin.PsResponse{Daemons: []node.DaemonInfo{live}}))
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "running") {
		t.Fatalf("complete: %+v", r)
	}
}
