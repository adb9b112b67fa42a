//go:build soak

package soak

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// cluster is the soak's three nodes; any may be killed and restarted on
// its data dir.
type cluster struct {
	t     *testing.T
	mu    sync.Mutex
	nodes map[string]*proc
	dirs  map[string]string
	alive map[string]bool
}

var names = []string{"n1", "n2", "n3"}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, nodes: map[string]*proc{}, dirs: map[string]string{}, alive: map[string]bool{}}
	for i, n := range names {
		c.dirs[n] = t.TempDir()
		var extra []string
		if i > 0 {
			extra = []string{"--join", c.nodes["n1"].info.Gossip}
		}
		c.nodes[n] = startNode(t, n, c.dirs[n], extra...)
		c.alive[n] = true
	}
	c.waitMembers()
	return c
}

func (c *cluster) node(n string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[n]
}

func (c *cluster) all() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*proc
	for _, n := range names {
		out = append(out, c.nodes[n])
	}
	return out
}

func (c *cluster) waitMembers() { waitMembers(c.t, c.all()) }

// via is the admin URL of an alive node, n3 (which never hosts the
// counter) first.
func (c *cluster) via() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range []string{"n3", "n1", "n2"} {
		if c.alive[n] {
			return c.nodes[n].url()
		}
	}
	return c.nodes["n3"].url()
}

// killRestart is kill -9 of node n, then its restart on the same data dir.
func (c *cluster) killRestart(n string) {
	c.mu.Lock()
	c.alive[n] = false
	p := c.nodes[n]
	c.mu.Unlock()
	p.kill()
	var join string
	for _, m := range names {
		if m != n {
			join = c.node(m).info.Gossip
			break
		}
	}
	q := startNode(c.t, n, c.dirs[n], "--join", join)
	c.mu.Lock()
	c.nodes[n], c.alive[n] = q, true
	c.mu.Unlock()
	c.waitMembers()
}

// migrate moves daemon to node to, retrying a refused attempt (right after
// a restart the cluster may still be settling); it fails the test after
// five attempts.
func (c *cluster) migrate(daemon, to string) {
	c.t.Helper()
	var last result
	for try := 0; try < 5; try++ {
		last = cli(c.t, "migrate", daemon, "--to", to, "--node", c.via())
		if last.code == 0 {
			return
		}
		c.t.Logf("migrate %s --to %s, attempt %d: %s", daemon, to, try+1, strings.TrimSpace(last.stderr))
		time.Sleep(time.Second)
	}
	c.t.Fatalf("migrate %s --to %s: %s", daemon, to, last)
}

func (c *cluster) count(daemon string) int {
	c.t.Helper()
	var n int
	eventually(c.t, 60*time.Second, "get "+daemon, func() (bool, string) {
		r := cli(c.t, "send", daemon, "get", "--node", c.via())
		if r.code != 0 {
			return false, r.String()
		}
		var err error
		n, err = strconv.Atoi(strings.TrimSpace(r.stdout))
		return err == nil, r.stdout
	})
	return n
}

// TestSoak: see the README, "Soak". Knobs (environment):
// WASMESH_SOAK_ROUNDS (20), WASMESH_SOAK_KILL (random | nonhosting |
// none; random), WASMESH_SOAK_BIG (100 migrations of the 64 MiB daemon),
// WASMESH_SOAK_BIG_MIB (64).
func TestSoak(t *testing.T) {
	// One test, not subtests: nodes restarted in the first phase must live
	// on into the second (a subtest's cleanup would stop them).
	c := newCluster(t)
	soakCounter(t, c)
	soakBallast(t, c)
}

func soakCounter(t *testing.T, c *cluster) {
	rounds := envInt("WASMESH_SOAK_ROUNDS", 20)
	mode := os.Getenv("WASMESH_SOAK_KILL")
	if mode == "" {
		mode = "random"
	}
	ok(t, "deploy", repoPath("plugins/examples/counter-wat/counter-wat.wasm"), "--kind", "counter", "--node", c.via())
	ok(t, "spawn", "counter", "--name", "c1", "--on", "n1", "--node", c.via())
	s := newSender("c1", c.via)
	host := "n1"
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for round := 1; round <= rounds; round++ {
		time.Sleep(500 * time.Millisecond) // let events flow
		to := map[string]string{"n1": "n2", "n2": "n1"}[host]
		start := time.Now()
		c.migrate("c1", to)
		host = to
		var victim string
		switch mode {
		case "random":
			victim = names[rng.IntN(len(names))]
		case "nonhosting":
			others := []string{"n3", map[string]string{"n1": "n2", "n2": "n1"}[host]}
			victim = others[rng.IntN(len(others))]
		}
		if victim != "" {
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			c.killRestart(victim)
		}
		if h, err := where(t, c.node("n3"), "c1"); err == nil && h != host {
			t.Logf("round %d: c1 is on %s, expected %s", round, h, host)
			host = h
		}
		t.Logf("round %d: migrated to %s, killed %q, %v; sender: %s", round, to, victim, time.Since(start).Round(time.Millisecond), s)
	}
	time.Sleep(500 * time.Millisecond)
	s.halt()
	got := c.count("c1")
	t.Logf("after %d rounds (kill mode %s): count %d; sender: %s", rounds, mode, got, s)
	// Exactly once: every event was resent until acknowledged (client
	// event ids make that safe), so the count is the acknowledged events,
	// no more, no less, whatever was killed when.
	if got != s.acked || s.failed != 0 {
		t.Fatalf("count %d, but %d events acknowledged (%d of them as already applied; highest count acknowledged %d), %d failed, %d answers lost in flight",
			got, s.acked, s.dups, s.highest, s.failed, s.unknown)
	}
}

func soakBallast(t *testing.T, c *cluster) {
	migrations := envInt("WASMESH_SOAK_BIG", 100)
	if migrations <= 0 {
		t.Log("WASMESH_SOAK_BIG=0: no migrations of the large daemon")
		return
	}
	mib := envInt("WASMESH_SOAK_BIG_MIB", 64)
	live := int64(mib) << 20
	ok(t, "deploy", repoPath("plugins/examples/testdata/ballast.wasm"), "--kind", "ballast", "--node", c.via())
	ok(t, "spawn", "ballast", "--name", "b1", "--on", "n1", "--node", c.via())
	size := uint32(live)
	hex := ""
	for i := 0; i < 4; i++ {
		hex += strconv.FormatUint(uint64(size>>(8*i))&0xff|0x100, 16)[1:]
	}
	ok(t, "send", "b1", hex, "--input-format", "hex", "--node", c.via())
	ok(t, "send", "b1", "x", "--node", c.via())

	gauges := []string{"wasmesh_migrator_runs", "wasmesh_migrator_handles", "wasmesh_migrator_staged",
		"wasmesh_migrator_bases", "wasmesh_migrator_inbound_bytes"}
	// The heap in use after collections that ran once the node was idle:
	// an idle process collects only every two minutes, so garbage from
	// the migrations would otherwise read as memory held; and what a
	// finalizer releases (closed wasm instances) goes only in the cycle
	// after the one that ran it, hence cycles collections.
	heapAfterGC := func(ps []*proc, cycles int) map[string]float64 {
		out := map[string]float64{}
		start := float64(time.Now().UnixNano()) / 1e9
		for _, p := range ps {
			mark := start // the nodes collect on their own: wait for all at once
			for i := 0; i < cycles; i++ {
				eventually(t, 3*time.Minute, p.name+" collects garbage", func() (bool, string) {
					m, err := metrics(t, p, "go_memstats_last_gc_time_seconds", "go_memstats_heap_alloc_bytes")
					if err != nil {
						return false, err.Error()
					}
					out[p.name] = m["go_memstats_heap_alloc_bytes"]
					if last := m["go_memstats_last_gc_time_seconds"]; last > mark {
						mark = last
						return true, ""
					}
					return false, ""
				})
			}
		}
		return out
	}
	// The checkpoint of the daemon on its node: its snapshot file.
	checkpointed := func(p *proc) {
		eventually(t, time.Minute, p.name+" checkpoints the daemon", func() (bool, string) {
			_, files := diskBytes(t, p.data)
			return files >= live/2, strconv.FormatInt(files, 10) + " bytes of snapshot files"
		})
	}
	checkpointed(c.node("n1"))
	baseline := heapAfterGC(c.all(), 1)
	worst := map[string]int64{}
	host := "n1"
	start := time.Now()
	for i := 1; i <= migrations; i++ {
		to := map[string]string{"n1": "n2", "n2": "n1"}[host]
		c.migrate("b1", to)
		host = to
		checkpointed(c.node(to))
		// In use: the event changes it, so it is checkpointed again, and
		// the store holds two checkpoints of it for a while.
		ok(t, "send", "b1", "x", "--node", c.via())
		eventually(t, time.Minute, to+" checkpoints the daemon again", func() (bool, string) {
			db, files := diskBytes(t, c.node(to).data)
			return db+files >= live*3/2, strconv.FormatInt(db+files, 10) + " bytes"
		})
		for _, p := range c.all() {
			db, files := diskBytes(t, p.data)
			worst[p.name] = max(worst[p.name], db+files)
			if db+files >= 3*live {
				t.Fatalf("after migration %d: %s's store is %d bytes (store.db %d, snapshot files %d), live state %d",
					i, p.name, db+files, db, files, live)
			}
		}
		if i%10 == 0 {
			t.Logf("%d migrations of the %d MiB daemon, %v each; largest store so far: %v", i, mib, time.Since(start)/time.Duration(i), worst)
		}
	}
	// After the linger, every migrator holds nothing, and the heap is
	// back near where it started.
	for _, p := range c.all() {
		eventually(t, 2*time.Minute, p.name+"'s migrator back to empty", func() (bool, string) {
			m, err := metrics(t, p, gauges...)
			if err != nil {
				return false, err.Error()
			}
			for _, g := range gauges {
				if m[g] != 0 {
					return false, g + " = " + strconv.FormatFloat(m[g], 'f', 0, 64)
				}
			}
			return true, ""
		})
	}
	after := heapAfterGC(c.all(), 2)
	for _, p := range c.all() {
		t.Logf("%s: heap %.0f MiB before the migrations, %.0f MiB after; store at most %.1f MiB", p.name,
			baseline[p.name]/(1<<20), after[p.name]/(1<<20), float64(worst[p.name])/(1<<20))
		if after[p.name] > baseline[p.name]+2*float64(live) {
			t.Errorf("%s: heap %.0f bytes after %d migrations, %.0f before", p.name, after[p.name], migrations, baseline[p.name])
		}
	}
	if got := strings.TrimSpace(ok(t, "send", "b1", "x", "--node", c.via())); got != strconv.Itoa(migrations+2) {
		t.Fatalf("ballast count after the migrations: %s", got)
	}
}
