// Package conformance runs every guest language's example daemons through
// the same scenarios on the real host runtime (package host), so a language
// SDK is only "supported" once its echo, counter and cooperative examples
// behave exactly like the Go and WAT ones. Adding a language means adding
// one row to langs below; TestConformanceTableCoversExamples fails if a
// committed example is not in the table.
package conformance

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// examplesDir is plugins/examples relative to this package.
const examplesDir = "../../plugins/examples"

// lang is one row of the conformance table. Paths are relative to
// plugins/examples; an empty path means the language has no such example.
type lang struct {
	name    string
	echo    string
	counter string
	coop    string
	// trap is a module that counts like the counter and traps on the payload
	// "trap". It is the counter itself where the SDK example does that; ""
	// means the language has no trapping example, and trapWhy says why.
	trap    string
	trapWhy string
	// send is a pingpong daemon (plugins/examples/pingpong-wat): the send
	// import's scenario, TestConformanceSend.
	send string
	// others are examples of the language that no scenario here fits;
	// their own tests are in plugins/examples (the aggregator needs a
	// node's channels, the forwarders a peer).
	others []string
}

func ex(dir string) string { return dir + "/" + dir + ".wasm" }

// langs is the conformance table.
var langs = []lang{
	{name: "go", echo: ex("echo-go"), counter: ex("counter-go"), coop: ex("cooperative-go"), others: []string{ex("aggregator-go"), ex("forwarder-go")},
		trapWhy: "counter-go is the plain counter (no trap payload) and the suite runs with Go alone, so no trapping Go guest can be built here; its guest trap path still runs in TestConformanceMemoryLimitTrap"},
	// counter-wat is the plain counter; testdata/trap.wasm is the WAT counter
	// that also traps on "trap", so it stands in for the WAT trap row.
	{name: "wat", echo: ex("echo-wat"), counter: ex("counter-wat"), coop: ex("cooperative-wat"),
		trap: "testdata/trap.wasm", send: ex("pingpong-wat")},
	{name: "rust", echo: ex("rust-echo"), counter: ex("rust-counter"), coop: ex("rust-coop"), trap: ex("rust-counter")},
	{name: "c", echo: ex("c-echo"), counter: ex("c-counter"), coop: ex("c-coop"), trap: ex("c-counter"), others: []string{ex("c-forwarder")}},
	// C++ uses the C SDK header; only echo has a C++ build.
	{name: "cpp", echo: ex("cpp-echo")},
	{name: "as", echo: ex("as-echo"), counter: ex("as-counter"), coop: ex("as-coop"), trap: ex("as-counter")},
	{name: "zig", echo: ex("zig-echo"), counter: ex("zig-counter"), coop: ex("zig-coop"), trap: ex("zig-counter")},
}

// eachLang runs f as a subtest for every row that has the module pick
// selects, and logs (at the parent level, not as a green subtest) which rows
// have none, so a missing example is visible in -v output.
func eachLang(t *testing.T, what string, pick func(lang) string, f func(t *testing.T, l lang, path string)) {
	t.Helper()
	ran := 0
	for _, l := range langs {
		p := pick(l)
		if p == "" {
			why := "no " + what + " example"
			if what == "trap" && l.trapWhy != "" {
				why = l.trapWhy
			}
			t.Logf("%s: not run: %s", l.name, why)
			continue
		}
		ran++
		t.Run(l.name, func(t *testing.T) { f(t, l, p) })
	}
	// The table must exercise every scenario with at least the five
	// languages issue 6 requires.
	if ran < 5 {
		t.Errorf("%s scenario ran for %d languages, want at least 5", what, ran)
	}
}

func readModule(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, path))
	if err != nil {
		t.Fatalf("%v (rebuild with plugins/examples/build.sh)", err)
	}
	return b
}

// cacheDir is a compilation cache shared by every runtime of the run: the
// Go examples take most of a second each to compile, and the scenarios use
// a fresh runtime each (and memory-capped variants), so without it the Go
// row alone would dominate the suite's time.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmesh-conformance-")
	if err != nil {
		panic(err)
	}
	cacheDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// suiteMemory caps every daemon of the scenarios (not the benchmarks). One
// cap for all means each module is compiled once per run (a different cap
// is a different compilation; the Go examples take seconds each under
// -race), and TestConformanceMemoryLimitTrap can exceed it with one event.
const suiteMemory = 16 << 20

// newRuntime is a started host runtime for the scenarios, closed at the end
// of the test.
func newRuntime(t testing.TB) *engine.Runtime {
	return newRuntimeWith(t, engine.Config{Limits: engine.Limits{MaxMemoryBytes: suiteMemory}})
}

// newRuntimeWith starts a runtime with cfg (sharing the compilation cache).
func newRuntimeWith(t testing.TB, cfg engine.Config) *engine.Runtime {
	t.Helper()
	ctx := context.Background()
	cfg.CacheDir = cacheDir
	rt, err := engine.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return rt
}

// register registers the module at path and returns its kind name.
func register(t testing.TB, rt *engine.Runtime, path string) string {
	t.Helper()
	k, err := rt.RegisterModule(context.Background(), readModule(t, path), "")
	if err != nil {
		t.Fatalf("register %s: %v", path, err)
	}
	return string(k.Digest)
}

func newID(t testing.TB) identity.Identity {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func spawn(t testing.TB, rt *engine.Runtime, kind string, id identity.Identity, opts engine.SpawnOptions) *engine.Daemon {
	t.Helper()
	d, err := rt.Spawn(context.Background(), kind, id, opts)
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	return d
}

// guest is a daemon plus a chain validator that every output it emits must
// pass, so each scenario also checks the causal chain.
type guest struct {
	t   testing.TB
	d   *engine.Daemon
	v   *chain.Validator
	seq uint64
}

func newGuest(t testing.TB, d *engine.Daemon) *guest {
	return &guest{t: t, d: d, v: chain.NewGenesisValidator(d.Origin())}
}

// send delivers payload, requires success, validates every output's link
// and returns copies of the payloads.
func (g *guest) send(payload []byte) [][]byte {
	g.t.Helper()
	g.seq++
	outs, err := g.d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: g.seq, Payload: payload})
	if err != nil {
		g.t.Fatalf("deliver %.20q: %v", payload, err)
	}
	got := make([][]byte, len(outs))
	for i, o := range outs {
		if err := g.v.Accept(o.Link, o.Payload); err != nil {
			g.t.Fatalf("deliver %.20q: output %d: chain: %v", payload, i, err)
		}
		got[i] = bytes.Clone(o.Payload)
	}
	return got
}

// expect delivers payload and requires exactly one output equal to want.
func (g *guest) expect(payload, want string) {
	g.t.Helper()
	got := g.send([]byte(payload))
	if len(got) != 1 || string(got[0]) != want {
		g.t.Fatalf("deliver %q: got %q, want [%q]", payload, got, want)
	}
}

// count sends n counting events, expecting from+1 .. from+n.
func (g *guest) count(from, n int) {
	g.t.Helper()
	for i := from + 1; i <= from+n; i++ {
		g.expect("x", strconv.Itoa(i))
	}
}

// fail delivers payload and requires a failure; it returns the error.
func (g *guest) fail(payload string) error {
	g.t.Helper()
	g.seq++
	outs, err := g.d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: g.seq, Payload: []byte(payload)})
	if err == nil {
		g.t.Fatalf("deliver %.20q: succeeded with %d outputs, want an error", payload, len(outs))
	}
	if len(outs) != 0 {
		g.t.Fatalf("deliver %.20q: failed but returned %d outputs", payload, len(outs))
	}
	return err
}

// checkHead requires the daemon's chain head to be the validator's: the
// validator saw every output the daemon committed.
func (g *guest) checkHead() {
	g.t.Helper()
	dh, dhh := g.d.ChainHead()
	vh, vhh := g.v.Head()
	if dh != vh || dhh != vhh {
		g.t.Fatalf("daemon chain head at sequence %d, validator at %d (or hashes differ)", dh.Sequence, vh.Sequence)
	}
}
