package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/history"
	"github.com/wasmesh/wasmesh/internal/netfault"
	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// faultNode is a node process whose QUIC traffic from its peers (and its
// answers to them) crosses a fault proxy: it announces the proxy's address
// (--advertise), and peers see its own listen address as the client address
// of its calls to them.
type faultNode struct {
	*proc
	name   string
	px     *netfault.Proxy
	listen string // the node's bound QUIC address
}

// faultCluster is n such nodes, named f0, f1, ...
type faultCluster struct {
	t     *testing.T
	nodes []*faultNode
}

// faultStart starts n nodes behind proxies seeded from seed, joined into one
// cluster, and waits until each sees all with a QUIC address.
func faultStart(t *testing.T, n int, seed uint64) *faultCluster {
	t.Helper()
	t.Logf("fault seed %d", seed)
	c := &faultCluster{t: t}
	for i := range n {
		px, err := netfault.New(netfault.Options{Seed: seed + uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		name := fmt.Sprintf("f%d", i)
		args := []string{"--advertise", px.Addr()}
		if i > 0 {
			args = append(args, "--join", c.nodes[0].info.Gossip)
		}
		p := startNode(t, name, t.TempDir(), args...)
		if p.info.QUIC != px.Addr() || p.info.QUICListen == "" {
			t.Fatalf("%s announces %q (listens %q), want the proxy %s", name, p.info.QUIC, p.info.QUICListen, px.Addr())
		}
		if err := px.SetTarget(p.info.QUICListen); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &faultNode{proc: p, name: name, px: px, listen: p.info.QUICListen})
	}
	for _, fn := range c.nodes {
		eventually(t, 20*time.Second, "membership of "+fn.name, func() (bool, string) {
			r := cli(t, "", "nodes", "--json", "--node", fn.url())
			var ns []node.NodeInfo
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
				return false, r.String()
			}
			alive := 0
			for _, m := range ns {
				if m.State == "alive" && strings.HasPrefix(m.Address, "127.0.0.1:") {
					alive++
				}
			}
			return alive == n, r.stdout
		})
	}
	return c
}

// node returns the node named name.
func (c *faultCluster) node(name string) *faultNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// setAll gives every path of the mesh the same faults.
func (c *faultCluster) setAll(f netfault.Faults) {
	c.t.Helper()
	for _, n := range c.nodes {
		if err := n.px.Set(f); err != nil {
			c.t.Fatal(err)
		}
	}
}

// partition cuts every QUIC packet to and from node name (gossip still
// flows: membership keeps it alive, the gray failure).
func (c *faultCluster) partition(name string) {
	c.t.Helper()
	c.cut(name, netfault.Partitioned(), netfault.Partitioned())
}

// mute drops every QUIC packet node name sends, and none it receives: its
// peers' requests reach it (and run), its answers and its own calls are
// lost.
func (c *faultCluster) mute(name string) {
	c.t.Helper()
	c.cut(name, netfault.Faults{Out: netfault.Link{Blocked: true}}, netfault.Faults{In: netfault.Link{Blocked: true}})
}

// cut sets own on name's proxy and, for packets from name, others on every
// other node's proxy.
func (c *faultCluster) cut(name string, own, others netfault.Faults) {
	c.t.Helper()
	x := c.node(name)
	if err := x.px.Set(own); err != nil {
		c.t.Fatal(err)
	}
	for _, n := range c.nodes {
		if n != x {
			if err := n.px.SetFor(x.listen, others); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// heal drops every fault.
func (c *faultCluster) heal() {
	for _, n := range c.nodes {
		n.px.Heal()
	}
}

// stats sums the proxies' counters, for the log.
func (c *faultCluster) stats() string {
	var b strings.Builder
	for _, n := range c.nodes {
		s := n.px.Stats()
		fmt.Fprintf(&b, " %s[in %d lost %d dup %d blocked %d | out %d lost %d dup %d blocked %d]", n.name,
			s.In.Packets, s.In.Lost, s.In.Duplicated, s.In.Blocked, s.Out.Packets, s.Out.Lost, s.Out.Duplicated, s.Out.Blocked)
	}
	return b.String()
}

// faultDaemon deploys the counter and spawns it by name on node on.
func (c *faultCluster) faultDaemon(name, on string) {
	c.t.Helper()
	ok(c.t, "deploy", counterWasm(), "--kind", "counter", "--node", c.nodes[0].url())
	eventually(c.t, 15*time.Second, "spawn on "+on, func() (bool, string) {
		r := cli(c.t, "", "spawn", "counter", "--name", name, "--on", on, "--node", c.nodes[0].url())
		return r.code == 0, r.String()
	})
}

// owner is the node ps lists the daemon on ("" if not exactly one).
func (c *faultCluster) owner(via *faultNode, daemon string) (string, string) {
	// Right after a heal a peer may still be in its dial backoff (a dial
	// that started during the cut fails, and calls fail fast until the
	// next one): ps lists it as unreachable for that moment, so ask again
	// for a few seconds before concluding.
	deadline := time.Now().Add(4 * time.Second)
	for {
		on, why, reachable := c.ownerOnce(via, daemon)
		if reachable || time.Now().After(deadline) {
			return on, why
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *faultCluster) ownerOnce(via *faultNode, daemon string) (string, string, bool) {
	r := cli(c.t, "", "ps", "--json", "--node", via.url())
	var ps []node.DaemonInfo
	_ = json.Unmarshal([]byte(r.stdout), &ps)
	var on []string
	for _, d := range ps {
		if d.Name == daemon {
			on = append(on, d.Node)
		}
	}
	reachable := !strings.Contains(r.stderr, "did not answer")
	if len(on) != 1 {
		return "", fmt.Sprintf("%s on %v: %s", daemon, on, r), reachable
	}
	return on[0], r.stdout, reachable
}

// migrate moves the daemon to node to through the admin API of via, aborted
// after timeout, and says whether it moved.
func (c *faultCluster) migrate(via *faultNode, daemon, to string, timeout time.Duration) (bool, string) {
	r := cli(c.t, "", "migrate", daemon, "--to", to, "--timeout", timeout.String(), "--json", "--node", via.url())
	return r.code == 0, r.String()
}

// faultLoad is the clients of one run: writers sending exactly-once events
// through different nodes, a reader asking "get" through another, all into
// one history.
type faultLoad struct {
	c        *faultCluster
	daemon   string
	rec      *history.Recorder
	patience time.Duration // how long a client waits for one answer before it resends
	stop     chan struct{}
	wg       sync.WaitGroup
}

// faultWorkload starts a writer on each node in writers and a reader on
// node reader; patience (0: 3 s) bounds each attempt.
func (c *faultCluster) faultWorkload(daemon string, writers []string, reader string, patience time.Duration) *faultLoad {
	l := &faultLoad{c: c, daemon: daemon, rec: history.NewRecorder(), patience: 3 * time.Second, stop: make(chan struct{})}
	if patience > 0 {
		l.patience = patience
	}
	for i, w := range writers {
		l.wg.Add(1)
		go l.write(fmt.Sprintf("%s-w%d", c.t.Name(), i), c.node(w))
	}
	l.wg.Add(2)
	go l.read(c.node(reader))
	go l.writeCLI(c.t.Name()+"-cli", c.node(reader))
	return l
}

func (l *faultLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// faultOutcome sorts a failed call: refused for sure (the node says the
// event did not reach the daemon, or refused it), or unknown.
func faultOutcome(err error) history.Outcome {
	var ae *admin.APIError
	if !errors.As(err, &ae) {
		return history.Unknown
	}
	switch {
	case ae.Code == admin.CodeNotFound, strings.Contains(ae.Message, "migrator: not delivered"),
		ae.Code == admin.CodeBadRequest, ae.Code == admin.CodeRefused, ae.Code == admin.CodeEventFailed:
		return history.Failed
	}
	return history.Unknown
}

func faultCount(res admin.SendResponse) (uint64, error) {
	if len(res.Outputs) != 1 {
		return 0, fmt.Errorf("%d outputs", len(res.Outputs))
	}
	return strconv.ParseUint(string(res.Outputs[0]), 10, 64)
}

// write sends events 1, 2, ... under client id client, each until it is
// acknowledged (a count, or "already applied"), retrying with the same id.
func (l *faultLoad) write(client string, via *faultNode) {
	defer l.wg.Done()
	cl, _ := admin.NewClient(via.url(), "")
	for id := uint64(1); !l.stopped(); {
		call := l.rec.Invoke(client, history.Send, id)
		ctx, cancel := context.WithTimeout(context.Background(), l.patience)
		res, err := cl.SendOnce(ctx, l.daemon, client, id, []byte("x"))
		cancel()
		switch {
		case err != nil && faultOutcome(err) == history.Failed:
			call.Fail(err)
		case err != nil:
			call.Unknown(err)
		case res.Duplicate:
			call.Duplicate()
			id++
		default:
			v, perr := faultCount(res)
			if perr != nil {
				call.Unknown(perr)
				break
			}
			call.OK(v)
			id++
		}
		if err != nil {
			time.Sleep(50 * time.Millisecond)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// read asks "get" until stopped.
func (l *faultLoad) read(via *faultNode) {
	defer l.wg.Done()
	cl, _ := admin.NewClient(via.url(), "")
	for !l.stopped() {
		call := l.rec.Invoke("reader", history.Read, 0)
		ctx, cancel := context.WithTimeout(context.Background(), l.patience)
		res, err := cl.Send(ctx, l.daemon, []byte("get"))
		cancel()
		if err != nil {
			call.Unknown(err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		v, perr := faultCount(res)
		if perr != nil {
			call.Unknown(perr)
			continue
		}
		call.OK(v)
		time.Sleep(10 * time.Millisecond)
	}
}

// finish stops the clients, heals the network, reads the final count once
// it is stable and checks the history; it returns the check's result.
func (l *faultLoad) finish() history.Result {
	t := l.c.t
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.c.heal()
	via := l.c.nodes[0]
	var final, prev uint64
	eventually(t, 20*time.Second, "a stable final count", func() (bool, string) {
		r := cli(t, "", "send", l.daemon, "get", "--node", via.url())
		if r.code != 0 {
			return false, r.String()
		}
		v, err := strconv.ParseUint(strings.TrimSpace(r.stdout), 10, 64)
		if err != nil {
			return false, r.String()
		}
		final, prev = v, final
		if v != prev {
			time.Sleep(300 * time.Millisecond)
			return false, r.stdout
		}
		return true, r.stdout
	})
	if on, why := l.c.owner(via, l.daemon); on == "" {
		t.Fatalf("not exactly one owner: %s", why)
	}
	res := history.Check(l.rec.Ops(), final)
	t.Logf("history: %s; proxies:%s", res, l.c.stats())
	if err := res.Err(); err != nil {
		t.Fatalf("%v\nhistory and node logs kept in %s", err, l.dump())
	}
	if os.Getenv("WASMESH_FAULT_KEEP") != "" {
		t.Logf("history and node logs kept in %s", l.dump())
	}
	return res
}

// dump writes the history and every node's log to a directory that
// outlives the test, for a failure to be read in full.
func (l *faultLoad) dump() string {
	dir, err := os.MkdirTemp("", "wasmesh-faults-")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, o := range l.rec.Ops() {
		fmt.Fprintf(&b, "%s %s -> %s\n", o, o.Invoke.Format("15:04:05.000000"), o.Complete.Format("15:04:05.000000"))
	}
	_ = os.WriteFile(filepath.Join(dir, "history.txt"), []byte(b.String()), 0o644)
	for _, n := range l.c.nodes {
		_ = os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(n.log.String()), 0o644)
	}
	return dir
}

// writeCLI is a writer as a user runs one: `wasmesh send --stdin
// --client-id` fed one event at a time, the CLI resending an event whose
// answer was lost. Each stdout line is an event's count; "event N: already
// applied" on stderr acknowledges a resend; "error: event N" means the CLI
// gave up on it (unknown). If the CLI exits, a new one continues from the
// event in flight, under the same id.
func (l *faultLoad) writeCLI(client string, via *faultNode) {
	defer l.wg.Done()
	next := uint64(1)
	for !l.stopped() {
		next = l.runCLI(client, via, next)
		time.Sleep(300 * time.Millisecond)
	}
}

// runCLI runs one CLI process from event id first; it returns the id of the
// first event not acknowledged.
func (l *faultLoad) runCLI(client string, via *faultNode, first uint64) uint64 {
	cmd := exec.Command(binPath(), "send", l.daemon, "--stdin", "--client-id", client,
		"--first-event-id", strconv.FormatUint(first, 10), "--retry-for", "5s", "--node", via.url())
	stdin, err1 := cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	stderr, err3 := cmd.StderrPipe()
	if err := errors.Join(err1, err2, err3, cmd.Start()); err != nil {
		l.c.t.Errorf("start the CLI writer: %v", err)
		return first
	}
	type line struct {
		out  bool
		text string
	}
	lines := make(chan line)
	var readers sync.WaitGroup
	scan := func(r io.Reader, out bool) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- line{out, sc.Text()}
		}
	}
	readers.Add(2)
	go scan(stdout, true)
	go scan(stderr, false)
	exited := make(chan struct{})
	go func() { readers.Wait(); _ = cmd.Wait(); close(exited) }()
	// A CLI stuck on an event (it resends for --retry-for, each attempt as
	// long as the node takes) must not hold the run up: once the run stops
	// it gets 2 s, then it is killed and its event stays unknown.
	go func() {
		select {
		case <-l.stop:
		case <-exited:
			return
		}
		select {
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Kill()
		case <-exited:
		}
	}()
	defer func() {
		stdin.Close()
		for {
			select {
			case <-lines:
			case <-exited:
				return
			}
		}
	}()
	id := first
	last := "" // the CLI's last stderr line, its reason when it exits
	for !l.stopped() {
		call := l.rec.Invoke(client, history.Send, id)
		if _, err := io.WriteString(stdin, "x\n"); err != nil {
			call.Unknown(err)
			return id
		}
		for answered := false; !answered; {
			select {
			case ln := <-lines:
				answered = true
				switch {
				case ln.out:
					v, err := strconv.ParseUint(ln.text, 10, 64)
					if err != nil {
						call.Unknown(fmt.Errorf("output %q", ln.text))
						break
					}
					call.OK(v)
				case strings.Contains(ln.text, "already applied"):
					call.Duplicate()
				case strings.HasPrefix(ln.text, "error: event"):
					// The CLI gave up on this id and moved on; so do we.
					call.Unknown(errors.New(ln.text))
				default:
					answered, last = false, ln.text // "wasmesh: ...": the CLI is exiting
				}
			case <-exited:
				call.Unknown(fmt.Errorf("the CLI exited: %s", last))
				return id
			}
		}
		id++
		time.Sleep(5 * time.Millisecond)
	}
	return id
}
