package e2e

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// meshGarbage sends n datagrams of garbage from loopback to addr.
func meshGarbage(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		b := make([]byte, 200+i%1000)
		for j := range b {
			b[j] = byte(i*31 + j*7)
		}
		if i%2 == 0 {
			b[0] |= 0xc0 // looks like a QUIC long header
		}
		if _, err := c.Write(b); err != nil {
			t.Fatalf("send garbage to %s: %v", addr, err)
		}
		if i%200 == 199 {
			// Keep the loopback socket buffers from dropping most of it.
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// meshRejected sums wasmesh_rejected_packets_total for one port.
func meshRejected(t *testing.T, p *proc, port string) float64 {
	t.Helper()
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(httpGet(t, p.url()+"/metrics")))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "wasmesh_rejected_packets_total{") || !strings.Contains(line, `port="`+port+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestGarbageAtOpenPortsIsCountedNotLogged: thousands of unauthenticated
// datagrams at the QUIC and gossip ports cost a handful of log lines (one
// per reason per interval) and show in wasmesh_rejected_packets_total; the
// node keeps serving.
func TestGarbageAtOpenPortsIsCountedNotLogged(t *testing.T) {
	a := startNode(t, "alpha", t.TempDir())
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	ok(t, "spawn", "counter", "--name", "c", "--node", a.url())
	before := strings.Count(a.log.String(), "\n")

	const n = 3000
	meshGarbage(t, a.info.Gossip, n)
	meshGarbage(t, a.info.QUIC, n)

	eventually(t, 15*time.Second, "garbage counted", func() (bool, string) {
		g, q := meshRejected(t, a, "gossip"), meshRejected(t, a, "quic")
		return g >= n/2 && q >= n/2, "gossip=" + strconv.FormatFloat(g, 'f', 0, 64) + " quic=" + strconv.FormatFloat(q, 'f', 0, 64)
	})
	if got := ok(t, "send", "c", "x", "--node", a.url()); got != "1\n" {
		t.Fatalf("send after the flood = %q", got)
	}
	logs := a.log.String()
	added := strings.Split(logs, "\n")[before:]
	if len(added) > 12 {
		t.Fatalf("%d log lines after %d garbage datagrams, want a handful:\n%s", len(added), 2*n, strings.Join(added[:20], "\n"))
	}
	t.Logf("%d log lines after %d garbage datagrams", len(added), 2*n)
	if !strings.Contains(logs, "suppressed") {
		t.Fatalf("the rate-limited line does not carry a count:\n%s", strings.Join(added, "\n"))
	}
	suiteEnd(t, a)
}

// TestLeakedGossipSecretIsNotMembership: a node with the cluster's gossip
// secret but a certificate of another CA gets into the gossip, but is
// listed unverified, and the scheduler never picks it: spawn and migrate
// --require with a tag only it announces fail with "no node matches", not
// with a TLS error or a timeout.
func TestLeakedGossipSecretIsNotMembership(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	ok(t, "cluster", "init", caDir)
	secret := filepath.Join(caDir, "cluster.secret")
	otherCA := filepath.Join(t.TempDir(), "other")
	ok(t, "cluster", "init", otherCA)

	a := startNode(t, "alpha", t.TempDir(), "--cluster-secret-file", secret, "--ca", caDir)
	b := startNode(t, "beta", t.TempDir(), "--cluster-secret-file", secret, "--ca", caDir, "--tag", "honest", "--join", a.info.Gossip)
	startNode(t, "mallory", t.TempDir(), "--cluster-secret-file", secret, "--ca", otherCA, "--tag", "evil", "--join", a.info.Gossip)

	meshWaitUnverified(t, a, "beta")
	meshWaitUnverified(t, b, "alpha")
	if out := ok(t, "nodes", "--node", a.url()); !strings.Contains(out, "unverified") {
		t.Fatalf("nodes table does not show mallory unverified:\n%s", out)
	}

	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url())
	for i := 0; i < 3; i++ {
		r := cli(t, "", "spawn", "counter", "--name", "lure"+strconv.Itoa(i), "--require", "evil", "--node", a.url())
		if r.code != 1 || !strings.Contains(r.stderr, "no node matches") || strings.Contains(strings.ToLower(r.stderr), "tls") {
			t.Fatalf("spawn --require evil: %s; want exit 1 with \"no node matches\"", r)
		}
	}
	// Named explicitly, it is refused too: no work goes to it.
	if r := cli(t, "", "spawn", "counter", "--name", "lure", "--on", "mallory", "--node", a.url()); r.code == 0 || !strings.Contains(r.stderr, "unverified") {
		t.Fatalf("spawn --on mallory: %s; want a refusal naming it unverified", r)
	}
	// The honest member is still a candidate.
	ok(t, "spawn", "counter", "--name", "c", "--require", "honest", "--node", a.url())
	if got := ok(t, "send", "c", "x", "--node", a.url()); got != "1\n" {
		t.Fatalf("send to the daemon on beta = %q", got)
	}
	r := cli(t, "", "migrate", "c", "--require", "evil", "--node", b.url())
	if r.code != 1 || !strings.Contains(r.stderr, "no node matches") {
		t.Fatalf("migrate --require evil: %s; want exit 1 with \"no node matches\"", r)
	}
	if r := cli(t, "", "migrate", "c", "--to", "mallory", "--node", b.url()); r.code == 0 || !strings.Contains(r.stderr, "unverified") {
		t.Fatalf("migrate --to mallory: %s; want a refusal naming it unverified", r)
	}
	if got := ok(t, "send", "c", "x", "--node", a.url()); got != "2\n" {
		t.Fatalf("send after the refused migration = %q", got)
	}
	suiteEnd(t, b)
	suiteEnd(t, a)
}

// meshWaitUnverified waits until p lists other alive and mallory unverified.
func meshWaitUnverified(t *testing.T, p *proc, other string) {
	t.Helper()
	eventually(t, 20*time.Second, p.info.Name+" lists "+other+" alive and mallory unverified", func() (bool, string) {
		r := cli(t, "", "nodes", "--json", "--node", p.url())
		var view []node.NodeInfo
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &view) != nil {
			return false, r.String()
		}
		states := map[string]string{}
		for _, n := range view {
			states[n.Name] = n.State
		}
		return states[other] == "alive" && states["mallory"] == "unverified", r.stdout
	})
}
