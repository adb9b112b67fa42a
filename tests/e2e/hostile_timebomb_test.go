package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// timebombModule writes timebomb_start.wasm with its threshold moved to at
// (examples.TimeBomb): it spawns before at; every instantiation after it
// (rollback, restart recovery) spins in its start function.
func timebombModule(t *testing.T, at time.Time) string {
	t.Helper()
	mod, err := examples.TimeBomb(at)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "timebomb.wasm")
	if err := os.WriteFile(p, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// timebombGauge reads wasmesh_daemons_failed from a node's /metrics.
func timebombGauge(t *testing.T, p *proc) string {
	t.Helper()
	for _, line := range strings.Split(httpGet(t, p.url()+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, "wasmesh_daemons_failed "); ok {
			return v
		}
	}
	t.Fatalf("no wasmesh_daemons_failed in /metrics")
	return ""
}

// timebombHealthy checks the node's health endpoint.
func timebombHealthy(t *testing.T, p *proc) {
	t.Helper()
	if got := httpGet(t, p.url()+"/healthz"); !strings.Contains(got, `"ok"`) {
		t.Fatalf("/healthz answered %q", got)
	}
}

// timebombRow is name's row of `ps --json`.
func timebombRow(t *testing.T, u, name string) (node.DaemonInfo, bool) {
	t.Helper()
	var rows []node.DaemonInfo
	if err := json.Unmarshal([]byte(ok(t, "ps", "--json", "--node", u)), &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Name == name {
			return r, true
		}
	}
	return node.DaemonInfo{}, false
}

// timebombEventFails sends one event to name and wants it to fail (exit 1)
// with want in the reason.
func timebombEventFails(t *testing.T, u, name, want string) {
	t.Helper()
	if r := cli(t, "", "send", name, "x", "--node", u); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("send to %s: want exit 1 naming %q: %s", name, want, r)
	}
}

// timebombStop stops a node with SIGTERM and asserts a clean exit.
func timebombStop(t *testing.T, p *proc) {
	t.Helper()
	p.stop()
	if p.err != nil {
		t.Fatalf("node exit after SIGTERM: %v\n%s", p.err, p.log.String())
	}
}

// TestHostileTimeBombRecovery (issue 10, "at startup the node marks that
// daemon failed and comes up healthy"): a time bomb spawned and fed three
// events, the node killed (the events are in the journal only), its time
// passes, the node restarts on the same data dir: healthy, the honest
// counter at its exact count, the bomb listed failed naming the CPU budget,
// sends to it refused naming the budget, its name taken; across a SIGTERM
// restart it stays failed with its three journaled events kept; stop
// removes it and frees the name.
func TestHostileTimeBombRecovery(t *testing.T) {
	data := t.TempDir()
	flags := []string{"--event-timeout", "200ms", "--checkpoint-interval", "1h"}
	n := startNode(t, "tb", data, flags...)
	u := n.url()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u)
	ok(t, "spawn", "counter", "--name", "honest", "--node", u)
	at := time.Now().Add(4 * time.Second)
	ok(t, "deploy", timebombModule(t, at), "--kind", "timebomb", "--node", u)
	ok(t, "spawn", "timebomb", "--name", "bomb", "--node", u)
	for i := 1; i <= 3; i++ {
		if got := strings.TrimSpace(ok(t, "send", "bomb", "x", "--node", u)); got != strconv.Itoa(i) {
			t.Fatalf("bomb event %d answered %q", i, got)
		}
	}
	const honest = 5
	for i := 1; i <= honest; i++ {
		ok(t, "send", "honest", "x", "--node", u)
	}
	n.kill()
	time.Sleep(time.Until(at) + 100*time.Millisecond)

	for round := 1; round <= 2; round++ {
		n = startNode(t, "tb", data, flags...)
		u = n.url()
		timebombHealthy(t, n)
		if got := strings.TrimSpace(ok(t, "send", "honest", "get", "--node", u)); got != strconv.Itoa(honest) {
			t.Fatalf("round %d: honest counter reads %q, want %d", round, got, honest)
		}
		ps := ok(t, "ps", "--node", u)
		if !strings.Contains(ps, "failed: bomb (") || !strings.Contains(ps, "CPU budget") {
			t.Fatalf("round %d: ps does not list the bomb failed with its reason:\n%s", round, ps)
		}
		row, found := timebombRow(t, u, "bomb")
		if !found || row.Status != node.StatusFailed || !strings.Contains(row.LastError, "CPU budget") {
			t.Fatalf("round %d: ps --json row of the bomb: %+v (found %v)", round, row, found)
		}
		failsWith(t, 1, "CPU budget", "send", "bomb", "x", "--node", u)
		failsWith(t, 1, "3 journaled event(s)", "send", "bomb", "x", "--node", u)
		failsWith(t, 1, "already used", "spawn", "counter", "--name", "bomb", "--node", u)
		failsWith(t, 1, "could not be recovered", "migrate", "bomb", "--to", "elsewhere", "--node", u)
		if g := timebombGauge(t, n); g != "1" {
			t.Fatalf("round %d: wasmesh_daemons_failed = %s, want 1", round, g)
		}
		timebombHealthy(t, n)
		if round == 1 {
			timebombStop(t, n)
		}
	}

	ok(t, "stop", "bomb", "--node", u)
	if _, found := timebombRow(t, u, "bomb"); found {
		t.Fatal("the bomb is still listed after stop")
	}
	if g := timebombGauge(t, n); g != "0" {
		t.Fatalf("wasmesh_daemons_failed after stop = %s, want 0", g)
	}
	ok(t, "spawn", "counter", "--name", "bomb", "--node", u)
	if got := strings.TrimSpace(ok(t, "send", "bomb", "x", "--node", u)); got != "1" {
		t.Fatalf("the new daemon under the freed name answered %q", got)
	}
	if got := strings.TrimSpace(ok(t, "send", "honest", "x", "--node", u)); got != strconv.Itoa(honest+1) {
		t.Fatalf("honest counter answered %q", got)
	}
	timebombHealthy(t, n)
	timebombStop(t, n)
}

// TestHostileTimeBombLive (issue 10, item 3): a time bomb on a live node
// whose time passes; a trapping event's rollback re-instantiates it, its
// start function blows the CPU budget: that event fails naming the budget
// and the daemon is failed, while an honest counter on the same node keeps
// answering by name, ps works and another daemon stops. After kill -9 and
// a restart the honest counter has its exact count (not input_seq 0) and
// the bomb, which cannot be recovered either, is listed failed.
func TestHostileTimeBombLive(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, "tb", data, "--event-timeout", "200ms")
	u := n.url()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u)
	ok(t, "spawn", "counter", "--name", "honest", "--node", u)
	ok(t, "spawn", "counter", "--name", "spare", "--node", u)
	at := time.Now().Add(3 * time.Second)
	ok(t, "deploy", timebombModule(t, at), "--kind", "timebomb", "--node", u)
	ok(t, "spawn", "timebomb", "--name", "bomb", "--node", u)
	ok(t, "send", "bomb", "x", "x", "--node", u)
	count := 0
	next := func() {
		t.Helper()
		count++
		if got := strings.TrimSpace(ok(t, "send", "honest", "x", "--node", u)); got != strconv.Itoa(count) {
			t.Fatalf("honest event %d answered %q", count, got)
		}
	}
	for range 3 {
		next()
	}
	time.Sleep(time.Until(at) + 100*time.Millisecond)

	// The trap's rollback re-instantiates the module: its start function
	// spins and is stopped by the budget, so the event fails unrolled-back
	// naming the budget, and the daemon is failed.
	if r := cli(t, "", "send", "bomb", "trap", "--node", u); r.code != 1 || !strings.Contains(r.stderr, "not rolled back") || !strings.Contains(r.stderr, "CPU budget") {
		t.Fatalf("trap whose rollback blows the budget: %s", r)
	}
	next()
	row, found := timebombRow(t, u, "bomb")
	if !found || row.Status != node.StatusFailed {
		t.Fatalf("the bomb after its rollback blew the budget: %+v (found %v)", row, found)
	}
	timebombEventFails(t, u, "bomb", "CPU budget")
	// Nothing to move: the refusal comes before any target is looked at.
	failsWith(t, 1, "daemon failed", "migrate", "bomb", "--to", "elsewhere", "--node", u)
	next()
	ok(t, "stop", "spare", "--node", u)
	if _, found := timebombRow(t, u, "spare"); found {
		t.Fatal("spare still listed after its stop")
	}
	for range 5 {
		next()
	}
	if g := timebombGauge(t, n); g != "1" {
		t.Fatalf("wasmesh_daemons_failed = %s, want 1", g)
	}
	timebombHealthy(t, n)

	n.kill()
	n = startNode(t, "tb", data, "--event-timeout", "200ms")
	u = n.url()
	timebombHealthy(t, n)
	if got := strings.TrimSpace(ok(t, "send", "honest", "get", "--node", u)); got != strconv.Itoa(count) {
		t.Fatalf("after kill -9 and restart the honest counter reads %q, want %d", got, count)
	}
	if row, found := timebombRow(t, u, "bomb"); !found || row.Status != node.StatusFailed || !strings.Contains(row.LastError, "CPU budget") {
		t.Fatalf("the bomb after the restart: %+v (found %v)", row, found)
	}
	failsWith(t, 1, "CPU budget", "send", "bomb", "x", "--node", u)
	next()
	timebombStop(t, n)
}
