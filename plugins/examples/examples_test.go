// These tests run the Go and WAT examples and the host's test fixtures
// (each a committed .wasm built by build.sh) on a bare wazero with minimal
// host functions: they prove the modules behave as their READMEs say,
// independently of the real host in host/.

package examples

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmesh/wasmesh/abi"
)

// Compiling a Go guest takes most of this test's time; share the result.
var (
	cacheOnce sync.Once
	cache     wazero.CompilationCache
)

// calls records what the guest asked of the host during one call.
type calls struct {
	outs  [][]byte
	fails []string
	state []byte
	oob   int // emit/fail/state_write with a range outside memory
}

type env struct {
	t     *testing.T
	ctx   context.Context
	rt    wazero.Runtime
	rec   *calls
	code  wazero.CompiledModule
	n     int
	stout bytes.Buffer
}

type runtimeOpt func(wazero.RuntimeConfig) wazero.RuntimeConfig

// newEnv compiles file on a fresh runtime with the wasmesh host module and
// WASI. Host functions other than emit, fail and state_write do nothing.
func newEnv(t *testing.T, file string, opts ...runtimeOpt) *env {
	t.Helper()
	return newEnvCtx(t, context.Background(), file, opts...)
}

// newEnvCtx compiles with ctx, which may carry a function listener. The
// shared cache is used only for plain configurations: code compiled with
// termination checks or listeners must not be mixed with code without.
func newEnvCtx(t *testing.T, ctx context.Context, file string, opts ...runtimeOpt) *env {
	t.Helper()
	bin, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := wazero.NewRuntimeConfig()
	if len(opts) == 0 && ctx == context.Background() {
		cacheOnce.Do(func() { cache = wazero.NewCompilationCache() })
		cfg = cfg.WithCompilationCache(cache)
	}
	for _, o := range opts {
		cfg = o(cfg)
	}
	e := &env{t: t, ctx: ctx, rt: wazero.NewRuntimeWithConfig(ctx, cfg), rec: &calls{}}
	t.Cleanup(func() { e.rt.Close(ctx) })

	read := func(m api.Module, ptr, n uint32) ([]byte, bool) {
		b, ok := m.Memory().Read(ptr, n)
		if !ok {
			e.rec.oob++
		}
		return bytes.Clone(b), ok
	}
	_, err = e.rt.NewHostModuleBuilder(abi.ImportModule).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
		if b, ok := read(m, ptr, n); ok {
			e.rec.outs = append(e.rec.outs, b)
		}
	}).Export(abi.ImportEmit).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
		if b, ok := read(m, ptr, n); ok {
			e.rec.fails = append(e.rec.fails, string(b))
		}
	}).Export(abi.ImportFail).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
		if b, ok := read(m, ptr, n); ok {
			e.rec.state = append(e.rec.state, b...)
		}
	}).Export(abi.ImportStateWrite).
		NewFunctionBuilder().WithFunc(func(int32, uint32, uint32) {}).Export(abi.ImportLog).
		NewFunctionBuilder().WithFunc(func() int64 { return 0 }).Export(abi.ImportNow).
		NewFunctionBuilder().WithFunc(func(uint32, uint32) {}).Export(abi.ImportRandom).
		NewFunctionBuilder().WithFunc(func(uint32) {}).Export(abi.ImportSelf).
		NewFunctionBuilder().WithFunc(func(uint32, uint32, uint32, uint32) uint32 { return 1 }).Export(abi.ImportPublish).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, e.rt)
	if e.code, err = e.rt.CompileModule(ctx, bin); err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	return e
}

// instance is one running daemon.
type instance struct {
	e   *env
	mod api.Module
	seq uint64
}

// start instantiates the module the way the host does: no start function
// run implicitly, then _initialize if exported (Go reactors need it before
// any other export), then nothing else.
func (e *env) start() *instance {
	e.t.Helper()
	e.n++
	cfg := wazero.NewModuleConfig().WithName("guest" + strconv.Itoa(e.n)).
		WithStartFunctions().WithStdout(&e.stout)
	mod, err := e.rt.InstantiateModule(e.ctx, e.code, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
		if _, err := f.Call(e.ctx); err != nil {
			e.t.Fatalf("_initialize: %v", err)
		}
	}
	return &instance{e: e, mod: mod}
}

// write asks the guest for an input buffer and copies data into it.
func (in *instance) write(data []byte) uint32 {
	in.e.t.Helper()
	res, err := in.mod.ExportedFunction(abi.ExportInput).Call(in.e.ctx, uint64(len(data)))
	if err != nil {
		in.e.t.Fatalf("wasmesh_input(%d): %v", len(data), err)
	}
	ptr := uint32(res[0])
	if !in.mod.Memory().Write(ptr, data) {
		in.e.t.Fatalf("wasmesh_input(%d) returned %d, outside memory", len(data), ptr)
	}
	return ptr
}

// call runs one ABI export that takes (ptr, len) of data and returns i32.
func (in *instance) call(ctx context.Context, export string, data []byte) (int32, error) {
	*in.e.rec = calls{}
	ptr := in.write(data)
	res, err := in.mod.ExportedFunction(export).Call(ctx, uint64(ptr), uint64(len(data)))
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

func (in *instance) processCtx(ctx context.Context, payload []byte) (int32, error) {
	*in.e.rec = calls{}
	ptr := in.write(payload)
	in.seq++
	res, err := in.mod.ExportedFunction(abi.ExportProcess).Call(ctx, 0xfeed, in.seq, uint64(ptr), uint64(len(payload)))
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

// process delivers one event that must succeed and returns its outputs.
func (in *instance) process(payload string) []string {
	in.e.t.Helper()
	rc, err := in.processCtx(in.e.ctx, []byte(payload))
	if err != nil || rc != 0 {
		in.e.t.Fatalf("process(%q): rc %d, err %v, fail %q", payload, rc, err, in.e.rec.fails)
	}
	var outs []string
	for _, o := range in.e.rec.outs {
		outs = append(outs, string(o))
	}
	return outs
}

func (in *instance) expect(payload string, want ...string) {
	in.e.t.Helper()
	if got := in.process(payload); !slices.Equal(got, want) {
		in.e.t.Fatalf("process(%q) emitted %q, want %q", payload, got, want)
	}
}

func TestEcho(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // past a page: the input buffer must grow
	for _, file := range []string{"echo-go/echo-go.wasm", "echo-wat/echo-wat.wasm"} {
		t.Run(file, func(t *testing.T) {
			g := newEnv(t, file).start()
			g.expect("hello", "hello")
			g.expect("", "")
			g.expect(string(big), string(big))
			g.expect("after big", "after big")
		})
	}
}

var counters = []string{
	"counter-go/counter-go.wasm",
	"counter-wat/counter-wat.wasm",
	"cooperative-go/cooperative-go.wasm",
	"cooperative-wat/cooperative-wat.wasm",
}

func TestCounter(t *testing.T) {
	for _, file := range counters {
		t.Run(file, func(t *testing.T) {
			g := newEnv(t, file).start()
			g.expect("get", "0")
			g.expect("a", "1")
			g.expect("b", "2")
			g.expect("get", "2")
			g.expect("", "3")
			g.expect("getx", "4") // only exactly "get" reads
			g.expect("ge", "5")
			g.expect("get", "5")
		})
	}
}

// The cooperative pair carries the count through state_write alone: a
// fresh instance restored from it continues where the first one stopped.
func TestCooperativeSnapshotRestore(t *testing.T) {
	for _, file := range []string{"cooperative-go/cooperative-go.wasm", "cooperative-wat/cooperative-wat.wasm"} {
		t.Run(file, func(t *testing.T) {
			e := newEnv(t, file)
			a := e.start()
			a.expect("x", "1")
			a.expect("x", "2")
			a.expect("x", "3")
			*e.rec = calls{}
			res, err := a.mod.ExportedFunction(abi.ExportSnapshot).Call(e.ctx)
			if err != nil || res[0] != 0 {
				t.Fatalf("snapshot: %v %v, fail %q", res, err, e.rec.fails)
			}
			state := e.rec.state
			if want := binary.LittleEndian.AppendUint64(nil, 3); !bytes.Equal(state, want) {
				t.Fatalf("state % x, want % x", state, want)
			}

			b := e.start()
			if rc, err := b.call(e.ctx, abi.ExportRestore, state); err != nil || rc != 0 {
				t.Fatalf("restore: rc %d err %v fail %q", rc, err, e.rec.fails)
			}
			b.expect("get", "3")
			b.expect("x", "4")

			c := e.start()
			rc, err := c.call(e.ctx, abi.ExportRestore, state[:7])
			if err != nil || rc == 0 || len(e.rec.fails) != 1 || !strings.Contains(e.rec.fails[0], "8") {
				t.Fatalf("restore of 7 bytes: rc %d err %v fail %q; want an error naming the 8-byte size", rc, err, e.rec.fails)
			}
		})
	}
}

// Wasm exports are static, so cooperative mode must come from importing
// the SDK's coop package, and only from that.
func TestGoCooperativeExportsOnlyWithCoop(t *testing.T) {
	for file, coop := range map[string]bool{
		"echo-go/echo-go.wasm":               false,
		"counter-go/counter-go.wasm":         false,
		"cooperative-go/cooperative-go.wasm": true,
		"aggregator-go/aggregator-go.wasm":   false,
	} {
		e := newEnv(t, file)
		ex := e.code.ExportedFunctions()
		for _, name := range []string{abi.ExportSnapshot, abi.ExportRestore} {
			if _, ok := ex[name]; ok != coop {
				t.Errorf("%s: export %s present = %v, want %v", file, name, ok, coop)
			}
		}
		if p := abiProblems(e.code); len(p) > 0 {
			t.Errorf("%s is not ABI v1 compliant: %q", file, p)
		}
	}
}

// The Go SDK checks the host's pointer against its own input buffer, so a
// bad one fails the event with a message instead of reading stray memory.
func TestGoSDKRejectsPayloadOutsideInputBuffer(t *testing.T) {
	e := newEnv(t, "echo-go/echo-go.wasm")
	g := e.start()
	g.expect("ok", "ok")
	*e.rec = calls{}
	res, err := g.mod.ExportedFunction(abi.ExportProcess).Call(e.ctx, 1, 1, 8, 4)
	if err != nil || res[0] != 1 || len(e.rec.fails) != 1 || !strings.Contains(e.rec.fails[0], "outside the input buffer") {
		t.Fatalf("rc %v err %v fails %q outs %q", res, err, e.rec.fails, e.rec.outs)
	}
	if len(e.rec.outs) != 0 {
		t.Fatalf("failed event emitted %q", e.rec.outs)
	}
	g.expect("still alive", "still alive")
}

func fixture(name string) string { return filepath.Join("testdata", name+".wasm") }

func TestFixtureFail(t *testing.T) {
	e := newEnv(t, fixture("fail"))
	rc, err := e.start().processCtx(e.ctx, []byte("x"))
	if err != nil || rc != 1 || !slices.Equal(e.rec.fails, []string{"bad input"}) {
		t.Fatalf("rc %d err %v fails %q", rc, err, e.rec.fails)
	}
}

func TestFixtureTrap(t *testing.T) {
	e := newEnv(t, fixture("trap"))
	g := e.start()
	g.expect("a", "1")
	if _, err := g.processCtx(e.ctx, []byte("trap")); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("trap payload: err %v, want an unreachable trap", err)
	}
	// wazero leaves the instance usable after a trap; the trap came before
	// the count changed.
	g.expect("get", "1")
}

func TestFixtureHiddenGlobal(t *testing.T) {
	e := newEnv(t, fixture("hidden_global"))
	if n := len(e.code.ExportedFunctions()); n != 3 {
		t.Fatalf("%d exported functions, want marker, input, process", n)
	}
	g := e.start()
	g.expect("x", "1 0.25")
	g.expect("x", "2 0.50")
	g.expect("get", "2 0.50")
	g.expect("x", "3 0.75")
	g.expect("x", "4 1.00")
	g.expect("x", "5 1.25")
}

func TestFixtureTableMut(t *testing.T) {
	g := newEnv(t, fixture("table_mut")).start()
	g.expect("", "1")
	g.expect("", "2")
	g.expect("", "2")
}

func TestFixtureBigEmit(t *testing.T) {
	e := newEnv(t, fixture("big_emit"))
	g := e.start()
	for _, n := range []uint32{0, 5, 200000} {
		outs := g.process(string(binary.LittleEndian.AppendUint32(nil, n)))
		if len(outs) != 1 || outs[0] != strings.Repeat("a", int(n)) {
			t.Fatalf("n=%d: %d outputs, first %d bytes", n, len(outs), len(outs[0]))
		}
	}
	if rc, err := g.processCtx(e.ctx, []byte{1, 2}); err != nil || rc != 1 || !slices.Equal(e.rec.fails, []string{"need 4 bytes"}) {
		t.Fatalf("short payload: rc %d err %v fails %q", rc, err, e.rec.fails)
	}
}

func TestFixtureOOBEmit(t *testing.T) {
	e := newEnv(t, fixture("oob_emit"))
	g := e.start()
	for _, payload := range []string{"", "wrap"} {
		if rc, err := g.processCtx(e.ctx, []byte(payload)); err != nil || rc != 0 || e.rec.oob != 1 || len(e.rec.outs) != 0 {
			t.Fatalf("%q: rc %d err %v oob %d outs %q", payload, rc, err, e.rec.oob, e.rec.outs)
		}
	}
}

func TestFixtureGrow(t *testing.T) {
	g := newEnv(t, fixture("grow"), func(c wazero.RuntimeConfig) wazero.RuntimeConfig {
		return c.WithMemoryLimitPages(16)
	}).start()
	g.expect("", "16")
}

func TestFixtureWASIHello(t *testing.T) {
	e := newEnv(t, fixture("wasi_hello"))
	g := e.start()
	g.expect("")
	g.expect("")
	if got := e.stout.String(); got != "hello\nhello\n" {
		t.Fatalf("stdout %q", got)
	}
}

func TestFixtureLoopRunsUntilStopped(t *testing.T) {
	e := newEnv(t, fixture("loop"), func(c wazero.RuntimeConfig) wazero.RuntimeConfig {
		return c.WithCloseOnContextDone(true)
	})
	g := e.start()
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancel()
	_, err := g.processCtx(ctx, nil)
	var exit interface{ ExitCode() uint32 }
	if err == nil || !errors.As(err, &exit) {
		t.Fatalf("err %v, want the call cut off by its deadline", err)
	}
}

// wazero's context-done checks sit on loop headers only, so they cannot stop
// recurse (that is the fixture's point). A function listener sees every
// call instead: it proves the call tree keeps going with a bounded depth,
// and stops it by panicking, which wazero turns into an error of the call.
type callCounter struct{ calls, depth, maxDepth int }

func (c *callCounter) NewFunctionListener(api.FunctionDefinition) experimental.FunctionListener {
	return c
}

func (c *callCounter) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
	c.calls++
	c.depth++
	c.maxDepth = max(c.maxDepth, c.depth)
	if c.calls == 200000 {
		panic("enough calls")
	}
}

func (c *callCounter) After(context.Context, api.Module, api.FunctionDefinition, []uint64) {
	c.depth--
}

func (c *callCounter) Abort(context.Context, api.Module, api.FunctionDefinition, error) { c.depth-- }

func TestFixtureRecurseRunsUntilStopped(t *testing.T) {
	var c callCounter
	e := newEnvCtx(t, experimental.WithFunctionListenerFactory(context.Background(), &c), fixture("recurse"))
	g := e.start()
	c = callCounter{}
	_, err := g.processCtx(e.ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "enough calls") {
		t.Fatalf("err %v, want the listener's panic", err)
	}
	// wasmesh_input, then wasmesh_process and f(60) down to f(0).
	if c.maxDepth != 62 {
		t.Fatalf("call depth reached %d, want 62 (process + f(60)..f(0))", c.maxDepth)
	}
}

// abiProblems is a minimal ABI v1 check, enough to show each fixture is
// compliant or has exactly the defect its name promises. The real
// validator belongs to abi/.
func abiProblems(m wazero.CompiledModule) []string {
	var p []string
	if _, ok := m.ExportedMemories()[abi.ExportMemory]; !ok {
		p = append(p, "no memory")
	}
	ex := m.ExportedFunctions()
	for _, name := range []string{abi.ExportMarker, abi.ExportInput, abi.ExportProcess} {
		if _, ok := ex[name]; !ok {
			p = append(p, "no "+name)
		}
	}
	for name, f := range ex {
		want, ok := abi.ExportSignature(name)
		if name == abi.ExportStart {
			p = append(p, "exports _start")
		} else if ok && !want.Equal(signature(f)) {
			p = append(p, name+" has signature "+signature(f).String())
		}
	}
	_, snap := ex[abi.ExportSnapshot]
	_, rest := ex[abi.ExportRestore]
	if snap != rest {
		p = append(p, "half of the cooperative pair")
	}
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		var want abi.Signature
		ok := false
		switch mod {
		case abi.ImportModule:
			want, ok = abi.ImportSignature(name)
		case abi.WASIModule:
			want, ok = abi.WASISignature(name)
		}
		if !ok || !want.Equal(signature(f)) {
			p = append(p, "imports "+mod+"."+name)
		}
	}
	return p
}

func signature(f api.FunctionDefinition) abi.Signature {
	conv := func(ts []api.ValueType) []abi.ValType {
		var out []abi.ValType
		for _, t := range ts {
			out = append(out, abi.ValType(t))
		}
		return out
	}
	return abi.Signature{Params: conv(f.ParamTypes()), Results: conv(f.ResultTypes())}
}

func TestFixturesABICompliance(t *testing.T) {
	refused := map[string]string{
		"no_memory":       "no memory",
		"no_marker":       "no " + abi.ExportMarker,
		"no_process":      "no " + abi.ExportProcess,
		"bad_process_sig": abi.ExportProcess + " has signature (i32, i32) -> i32",
		"bad_import":      "imports env.abort",
		"start":           "exports _start",
		"half_coop":       "half of the cooperative pair",
	}
	files, err := filepath.Glob("testdata/*.wat")
	if err != nil || len(files) < 17 {
		t.Fatalf("found %d fixtures (%v)", len(files), err)
	}
	for _, src := range files {
		name := strings.TrimSuffix(filepath.Base(src), ".wat")
		t.Run(name, func(t *testing.T) {
			got := abiProblems(newEnv(t, fixture(name)).code)
			var want []string
			if r, ok := refused[name]; ok {
				want = []string{r}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ABI problems %q, want %q", got, want)
			}
		})
	}
	for _, file := range append([]string{"echo-wat/echo-wat.wasm"}, counters[1], counters[3]) {
		if p := abiProblems(newEnv(t, file).code); len(p) > 0 {
			t.Errorf("%s: %q", file, p)
		}
	}
}

// fail delivers one event that must fail and returns the guest's message.
func (in *instance) fail(payload string) string {
	in.e.t.Helper()
	rc, err := in.processCtx(in.e.ctx, []byte(payload))
	if err != nil || rc == 0 || len(in.e.rec.fails) != 1 || len(in.e.rec.outs) != 0 {
		in.e.t.Fatalf("process(%q): rc %d, err %v, fails %q, outs %q; want one failure and no output", payload, rc, err, in.e.rec.fails, in.e.rec.outs)
	}
	return in.e.rec.fails[0]
}

// The aggregator as a subscriber sees channel messages as plain events:
// three publishers interleaved, one duplicate, then unparsable ones.
func TestAggregator(t *testing.T) {
	g := newEnv(t, "aggregator-go/aggregator-go.wasm").start()
	g.expect("get", "total=0", "anomalies=0")
	for _, m := range []string{"c 1", "a 1", "b 1", "a 2", "c 2", "b 2", "a 3", "b 2", "c 3", "b 3", "a 4"} {
		g.expect(m) // a message has no output
	}
	g.expect("get", "total=11", "anomalies=1", "a=4:4", "b=4:3", "c=3:3")
	g.expect("c 5")  // a loss
	g.expect("a 0")  // seq starts at 1: does not parse
	g.expect("oops") // one field
	g.expect("get", "total=14", "anomalies=4", "?=2:0", "a=4:4", "b=4:3", "c=4:5")
}

// pub's argument errors fail the event before anything is published; the
// test host refuses every publish, which must fail the event too.
func TestAggregatorPubErrors(t *testing.T) {
	g := newEnv(t, "aggregator-go/aggregator-go.wasm").start()
	for payload, want := range map[string]string{
		"pub":              "usage",
		"pub orders 1 t x": "usage",
		"pub orders 0":     "count must be",
		"pub orders 1001":  "count must be",
		"pub orders ten":   "count must be",
		"pub orders 1 ?":   "tag must be",
	} {
		if msg := g.fail(payload); !strings.Contains(msg, want) {
			t.Errorf("%q failed with %q, want it to mention %q", payload, msg, want)
		}
	}
	if msg := g.fail("pub orders 3 t"); !strings.Contains(msg, "after=0") {
		t.Errorf("refused publish failed with %q, want after=0", msg)
	}
	g.expect("get", "total=0", "anomalies=0") // no error counted as a message
	g.expect("pub orders")                    // two fields: a message, not a bad command
	g.expect("get", "total=1", "anomalies=1", "?=1:0")
}
