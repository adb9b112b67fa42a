package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	flagSeeds    = flag.Int("seeds", 200, "number of seeds TestSim runs (seeds 1..N)")
	flagSeed     = flag.Int64("seed", 0, "replay exactly this seed (and shrink it if it fails)")
	flagSteps    = flag.Int("steps", 100, "steps per seed")
	flagSoak     = flag.Bool("soak", false, "soak: 5000 seeds of 200 steps unless -seeds/-steps say otherwise")
	flagScale    = flag.Bool("scale", false, "scale run: message counts of lookups and migrations against cluster size")
	flagLong     = flag.Bool("long-outages", false, "let partitions and time jumps last long (unbounded partitions, jumps to 45 s): with them an outage can outlast the linger and shows the open cutover liveness issue")
	flagCrashMid = flag.Bool("crash-mid", false, "crash nodes in the middle of a migration too: with their disk (restart reconciliation is not simulated), or the source of a migration another node orchestrates (shows the open orchestrator hang)")
	flagLinger   = flag.Duration("linger", 60*time.Second, "the migrators' linger (their default is 30 s); an outage past the cutover must end within it")
	flagMigLog   = flag.Bool("miglog", false, "migrators' debug logs to stderr")
	flagMaxFail  = flag.Int("maxfail", 3, "stop after this many failing seeds")
	flagShrink   = flag.Bool("shrink", true, "shrink a failing seed's history")
	flagNodes    = flag.Int("nodes", 3, "nodes per simulated cluster")
	flagNet      = flag.Bool("net", false, "with -history: show the messages in flight after every step")
	flagTrace    = flag.Bool("history", false, "log every seed's history, failing or not")
)

var defaultCluster = config{nodes: 3, daemons: 4, clients: 3}

func echoModule(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", "examples", "echo-wat", "echo-wat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// TestSim runs the seeded cluster simulator: every seed is a history of
// steps (deliveries, losses, client events, migrations, cancels, time,
// partitions, crashes) on real migrators and runtimes, checked after every
// step and once everything has healed and settled. A failing seed is
// printed with its history, shrunk, and replays with -seed.
func TestSim(t *testing.T) {
	module := echoModule(t)
	cfg := defaultCluster
	cfg.nodes = *flagNodes
	seeds, steps := *flagSeeds, *flagSteps
	if *flagSoak {
		if !flagSet("seeds") {
			seeds = 5000
		}
		if !flagSet("steps") {
			steps = 200
		}
	}
	first, last := int64(1), int64(seeds)
	if *flagSeed != 0 {
		first, last = *flagSeed, *flagSeed
	}
	failures := 0
	for seed := first; seed <= last; seed++ {
		hist := genSteps(seed, steps)
		res := runSim(t, seed, cfg, module, hist)
		if *flagTrace {
			t.Logf("seed %d (%s):\n%s", seed, res.hash, strings.Join(res.trace, "\n"))
		}
		if !res.failed() {
			continue
		}
		failures++
		t.Errorf("seed %d failed after %d of %d steps: %s\nhistory:\n%s", seed, res.steps, len(hist), res.failure, strings.Join(res.trace, "\n"))
		if !*flagShrink {
			if failures >= *flagMaxFail {
				t.Fatalf("stopping after %d failing seeds", failures)
			}
			continue
		}
		short := shrink(t, seed, cfg, module, hist[:res.steps])
		sr := runSim(t, seed, cfg, module, short)
		t.Errorf("seed %d shrunk to %d steps: %s\nshort history:\n%s\nsteps: %s\nreplay: go test ./tests/sim -run 'TestSim$' -seed %d -steps %d",
			seed, len(short), sr.failure, strings.Join(sr.trace, "\n"), goSteps(short), seed, steps)
		if failures >= *flagMaxFail {
			t.Fatalf("stopping after %d failing seeds", failures)
		}
	}
	t.Logf("%d seeds of %d steps on %d nodes, %d failed", last-first+1, steps, cfg.nodes, failures)
}

// TestSimReplay: a seed replays the same history, outcome for outcome.
func TestSimReplay(t *testing.T) {
	module := echoModule(t)
	for _, seed := range []int64{3, 11, 42} {
		hist := genSteps(seed, 80)
		a := runSim(t, seed, defaultCluster, module, hist)
		b := runSim(t, seed, defaultCluster, module, hist)
		if a.hash != b.hash {
			t.Errorf("seed %d replayed differently: %s vs %s\nfirst difference: %s", seed, a.hash, b.hash, firstDiff(a.trace, b.trace))
		}
		if len(a.trace) < 80 {
			t.Errorf("seed %d traced only %d lines", seed, len(a.trace))
		}
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			lo := max(0, i-8)
			return fmt.Sprintf("line %d:\n%s\n>>> %s\n<<< %s", i, strings.Join(a[lo:i], "\n"), a[i], b[i])
		}
	}
	return "one trace is a prefix of the other"
}

// shrink is delta debugging over the step list: drop chunks of steps and
// keep the shorter history while the seed still fails, halving the chunk
// size down to single steps. Bounded in runs: each costs a whole cluster.
func shrink(t *testing.T, seed int64, cfg config, module []byte, hist []step) []step {
	cur := append([]step(nil), hist...)
	runs := 0
	const maxRuns = 300
	for chunk := max(len(cur)/2, 1); chunk >= 1 && runs < maxRuns; chunk /= 2 {
		for i := 0; i < len(cur) && runs < maxRuns; {
			try := append(append([]step(nil), cur[:i]...), cur[min(i+chunk, len(cur)):]...)
			runs++
			if r := runSim(t, seed, cfg, module, try); r.failed() {
				cur = try[:min(r.steps, len(try))]
				continue
			}
			i += chunk
		}
		if chunk == 1 {
			break
		}
	}
	t.Logf("seed %d: shrunk %d → %d steps in %d runs", seed, len(hist), len(cur), runs)
	return cur
}

// goSteps renders a history as a Go literal, for a regression test.
func goSteps(steps []step) string {
	var b strings.Builder
	b.WriteString("[]step{")
	for i, st := range steps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{%s, %d, %d, %d}", stepConst[st.Kind], st.A, st.B, st.C)
	}
	b.WriteString("}")
	return b.String()
}

var stepConst = [...]string{"stDeliver", "stDrop", "stDuplicate", "stSend", "stMigrate", "stCancel", "stTick", "stJump", "stPartition", "stHeal", "stCrashDisk", "stCrashWipe", "stRestore"}
