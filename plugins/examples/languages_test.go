package examples

// Tests for the examples built with the Rust, C, C++, AssemblyScript and Zig
// SDKs (built by build-{rust,c,as,zig}.sh). They run the committed .wasm
// files on a bare wazero with minimal host functions, so they need Go alone
// and pin the behaviours the host's conformance suite relies on.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// langExample is one committed module: dir/dir.wasm.
type langExample struct {
	dir  string
	kind string // echo, counter or coop
}

var langExamples = []langExample{
	{"rust-echo", "echo"}, {"rust-counter", "counter"}, {"rust-coop", "coop"},
	{"c-echo", "echo"}, {"c-counter", "counter"}, {"c-coop", "coop"},
	{"cpp-echo", "echo"},
	{"as-echo", "echo"}, {"as-counter", "counter"}, {"as-coop", "coop"},
	{"zig-echo", "echo"}, {"zig-counter", "counter"}, {"zig-coop", "coop"},
}

func langOfKind(kinds ...string) []langExample {
	var out []langExample
	for _, ex := range langExamples {
		for _, k := range kinds {
			if ex.kind == k {
				out = append(out, ex)
			}
		}
	}
	return out
}

func (ex langExample) file() string { return ex.dir + "/" + ex.dir + ".wasm" }

// langRecord is what the guest asked of the host since the last reset.
type langRecord struct {
	outs  [][]byte
	fails []string
	state []byte
}

// langHost is one wazero runtime with a "wasmesh" host module recording into
// rec, and the example compiled on it.
type langHost struct {
	t    *testing.T
	ctx  context.Context
	rt   wazero.Runtime
	code wazero.CompiledModule
	rec  langRecord
	n    int
}

func newLangHost(t *testing.T, file string) *langHost {
	t.Helper()
	bin, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (rebuild with build-<lang>.sh)", err)
	}
	ctx := context.Background()
	h := &langHost{t: t, ctx: ctx, rt: wazero.NewRuntime(ctx)}
	t.Cleanup(func() { h.rt.Close(ctx) })

	read := func(m api.Module, ptr, n uint32) []byte {
		b, ok := m.Memory().Read(ptr, n)
		if !ok {
			// Out of range is an error of the event for the real host; here
			// it can only mean a broken SDK.
			t.Errorf("guest passed [%d, +%d) outside its memory", ptr, n)
			return nil
		}
		return bytes.Clone(b)
	}
	_, err = h.rt.NewHostModuleBuilder(abi.ImportModule).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
		h.rec.outs = append(h.rec.outs, read(m, ptr, n))
	}).Export(abi.ImportEmit).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
		h.rec.fails = append(h.rec.fails, string(read(m, ptr, n)))
	}).Export(abi.ImportFail).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
		h.rec.state = append(h.rec.state, read(m, ptr, n)...)
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
	if h.code, err = h.rt.CompileModule(ctx, bin); err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	return h
}

// langGuest is one instance of the example.
type langGuest struct {
	h   *langHost
	mod api.Module
	seq uint64
}

// start instantiates like the host: no implicit start functions (a start
// section still runs), then _initialize if exported, then wasmesh_init with
// empty config if exported.
func (h *langHost) start() *langGuest {
	h.t.Helper()
	h.n++
	mod, err := h.rt.InstantiateModule(h.ctx, h.code,
		wazero.NewModuleConfig().WithName("guest"+strconv.Itoa(h.n)).WithStartFunctions())
	if err != nil {
		h.t.Fatal(err)
	}
	g := &langGuest{h: h, mod: mod}
	if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
		if _, err := f.Call(h.ctx); err != nil {
			h.t.Fatalf("_initialize: %v", err)
		}
	}
	if mod.ExportedFunction(abi.ExportInit) != nil {
		if rc, err := g.call(abi.ExportInit, nil); err != nil || rc != 0 {
			h.t.Fatalf("wasmesh_init: rc %d, err %v, fail %q", rc, err, h.rec.fails)
		}
	}
	return g
}

// input asks for a buffer of n bytes.
func (g *langGuest) input(n int) uint32 {
	g.h.t.Helper()
	res, err := g.mod.ExportedFunction(abi.ExportInput).Call(g.h.ctx, uint64(n))
	if err != nil {
		g.h.t.Fatalf("wasmesh_input(%d): %v", n, err)
	}
	return uint32(res[0])
}

func (g *langGuest) put(ptr uint32, data []byte) {
	g.h.t.Helper()
	if !g.mod.Memory().Write(ptr, data) {
		g.h.t.Fatalf("input buffer at %d cannot hold %d bytes", ptr, len(data))
	}
}

// call runs an export taking (ptr, len) of data and returning i32.
func (g *langGuest) call(export string, data []byte) (int32, error) {
	g.h.t.Helper()
	g.h.rec = langRecord{}
	ptr := g.input(len(data))
	g.put(ptr, data)
	res, err := g.mod.ExportedFunction(export).Call(g.h.ctx, uint64(ptr), uint64(len(data)))
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

// processAt delivers an event whose payload the caller already put at ptr.
func (g *langGuest) processAt(ptr uint32, n int) (int32, error) {
	g.h.rec = langRecord{}
	g.seq++
	res, err := g.mod.ExportedFunction(abi.ExportProcess).Call(g.h.ctx,
		api.EncodeI64(-2), g.seq, uint64(ptr), uint64(n))
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

func (g *langGuest) process(payload []byte) (int32, error) {
	g.h.t.Helper()
	ptr := g.input(len(payload))
	g.put(ptr, payload)
	return g.processAt(ptr, len(payload))
}

// expect delivers payload, requires success and exactly the outputs want.
func (g *langGuest) expect(payload string, want ...string) {
	g.h.t.Helper()
	rc, err := g.process([]byte(payload))
	if err != nil || rc != 0 {
		g.h.t.Fatalf("process(%.20q): rc %d, err %v, fail %q", payload, rc, err, g.h.rec.fails)
	}
	g.h.checkOuts(payload, want)
}

func (h *langHost) checkOuts(payload string, want []string) {
	h.t.Helper()
	ok := len(h.rec.outs) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = string(h.rec.outs[i]) == want[i]
	}
	if !ok {
		got := make([]string, len(h.rec.outs))
		for i, o := range h.rec.outs {
			got[i] = string(o)
		}
		if len(payload) > 40 || (len(want) == 1 && len(want[0]) > 40) {
			h.t.Fatalf("process(%.20q...) emitted %d outputs, first %d bytes; want %d outputs", payload, len(got), langLen(got), len(want))
		}
		h.t.Fatalf("process(%q) emitted %q, want %q", payload, got, want)
	}
}

func langLen(s []string) int {
	if len(s) == 0 {
		return -1
	}
	return len(s[0])
}

// The validator is what the host runs at deploy: every example must pass it,
// import only "wasmesh" (none of them needs WASI), and declare the snapshot
// mode its name promises.
func TestLangModulesPassABIValidation(t *testing.T) {
	for _, ex := range langExamples {
		t.Run(ex.dir, func(t *testing.T) {
			bin, err := os.ReadFile(ex.file())
			if err != nil {
				t.Fatal(err)
			}
			info, err := abi.Validate(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range info.Imports {
				if im.Module != abi.ImportModule {
					t.Errorf("imports %s.%s; the SDKs should need nothing but %q", im.Module, im.Name, abi.ImportModule)
				}
			}
			wantMode := abi.ModeTransparent
			if ex.kind == "coop" {
				wantMode = abi.ModeCooperative
			}
			if info.Mode != wantMode {
				t.Errorf("mode %s, want %s", info.Mode, wantMode)
			}
			// The examples are committed: keep them small.
			if len(bin) > 64<<10 {
				t.Errorf("%d bytes; expected well under 64 KiB", len(bin))
			}
		})
	}
}

func TestLangEcho(t *testing.T) {
	// Past one 64 KiB page, so every SDK's input buffer has to grow.
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	bin := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
	for _, ex := range langOfKind("echo") {
		t.Run(ex.dir, func(t *testing.T) {
			g := newLangHost(t, ex.file()).start()
			g.expect("hello", "hello")
			g.expect("", "")
			g.expect(string(bin), string(bin))
			g.expect(string(big), string(big))
			g.expect("after big", "after big")
			g.expect("", "")

			// The ABI lets the host reuse the buffer for any input no longer
			// than the last one it asked for, without asking again.
			ptr := g.input(32)
			g.put(ptr, []byte("first"))
			if rc, err := g.processAt(ptr, 5); err != nil || rc != 0 {
				t.Fatalf("rc %d, err %v", rc, err)
			}
			g.h.checkOuts("first", []string{"first"})
			g.put(ptr, []byte("2nd"))
			if rc, err := g.processAt(ptr, 3); err != nil || rc != 0 {
				t.Fatalf("rc %d, err %v", rc, err)
			}
			g.h.checkOuts("2nd", []string{"2nd"})
		})
	}
}

func TestLangCounter(t *testing.T) {
	for _, ex := range langOfKind("counter", "coop") {
		t.Run(ex.dir, func(t *testing.T) {
			g := newLangHost(t, ex.file()).start()
			g.expect("get", "0")
			g.expect("a", "1")
			g.expect("b", "2")
			g.expect("get", "2")
			g.expect("", "3")
			g.expect("getx", "4") // only exactly "get" reads
			g.expect("ge", "5")
			g.expect("tra", "6") // only exactly "trap" traps

			if _, err := g.process([]byte("trap")); err == nil {
				t.Fatal(`"trap" returned normally; want a wasm trap`)
			}
			// The Rust SDK's panic hook hands the panic message to fail
			// before the trap, so the host can say why.
			if strings.HasPrefix(ex.dir, "rust-") &&
				(len(g.h.rec.fails) != 1 || !strings.Contains(g.h.rec.fails[0], "trap requested")) {
				t.Errorf("panic reported %q, want the panic message", g.h.rec.fails)
			}
			g.expect("get", "6")
			g.expect("x", "7")
			// A second trap: Rust's panic machinery, for one, keeps state
			// across panics, and the next event must still work.
			if _, err := g.process([]byte("trap")); err == nil {
				t.Fatal(`second "trap" returned normally`)
			}
			g.expect("x", "8")
			for i := 9; i <= 120; i++ {
				g.expect("x", strconv.Itoa(i))
			}
		})
	}
}

func TestLangCoopSnapshotRestore(t *testing.T) {
	for _, ex := range langOfKind("coop") {
		t.Run(ex.dir, func(t *testing.T) {
			h := newLangHost(t, ex.file())
			a := h.start()
			for i := 1; i <= 300; i++ { // past one byte, so byte order shows
				a.expect("x", strconv.Itoa(i))
			}
			if len(h.rec.state) != 0 {
				t.Fatalf("state_write during process: %x", h.rec.state)
			}

			h.rec = langRecord{}
			res, err := a.mod.ExportedFunction(abi.ExportSnapshot).Call(h.ctx)
			if err != nil || int32(res[0]) != 0 {
				t.Fatalf("wasmesh_snapshot: %v %v, fail %q", res, err, h.rec.fails)
			}
			want := binary.LittleEndian.AppendUint64(nil, 300)
			if !bytes.Equal(h.rec.state, want) {
				t.Fatalf("snapshot state %x, want %x", h.rec.state, want)
			}
			if len(h.rec.outs) != 0 {
				t.Fatalf("snapshot emitted %q", h.rec.outs)
			}
			state := h.rec.state
			a.expect("x", "301") // the source carries on; the copy must not see it

			b := h.start()
			for _, bad := range [][]byte{nil, state[:7], append(bytes.Clone(state), 0)} {
				rc, err := b.call(abi.ExportRestore, bad)
				if err != nil {
					t.Fatalf("restore(%d bytes): %v", len(bad), err)
				}
				if rc != 1 {
					t.Fatalf("restore(%d bytes) = %d, want 1", len(bad), rc)
				}
				if len(h.rec.fails) == 0 {
					t.Errorf("restore(%d bytes) failed without a message", len(bad))
				}
			}
			if rc, err := b.call(abi.ExportRestore, state); err != nil || rc != 0 {
				t.Fatalf("restore: rc %d, err %v, fail %q", rc, err, h.rec.fails)
			}
			b.expect("get", "300")
			b.expect("x", "301")
			b.expect("x", "302")
			a.expect("get", "301")

			// Large counts survive the round trip in full.
			big := binary.LittleEndian.AppendUint64(nil, 1<<40+5)
			c := h.start()
			if rc, err := c.call(abi.ExportRestore, big); err != nil || rc != 0 {
				t.Fatalf("restore: rc %d, err %v", rc, err)
			}
			c.expect("x", strconv.FormatUint(1<<40+6, 10))
		})
	}
}

// The forwarders (issue 14): a counter in each SDK language that sends
// "fwd <count>" to a peer on every tenth counted event with the send import.
// forwarder-go is here too, as all five behave identically.
var forwarders = []string{"forwarder-go", "c-forwarder"}

func forwarderFile(dir string) string { return dir + "/" + dir + ".wasm" }

func TestForwardersPassABIValidation(t *testing.T) {
	for _, dir := range forwarders {
		t.Run(dir, func(t *testing.T) {
			bin, err := os.ReadFile(forwarderFile(dir))
			if err != nil {
				t.Fatal(err)
			}
			info, err := abi.Validate(bin)
			if err != nil {
				t.Fatal(err)
			}
			sends := false
			for _, im := range info.Imports {
				switch {
				case im.Module == abi.ImportModule && im.Name == abi.ImportSend:
					sends = true
				case im.Module == abi.ImportModule && im.Name == abi.ImportPublish:
					t.Errorf("imports publish; a forwarder needs no channel grant")
				case im.Module != abi.ImportModule && dir != "forwarder-go":
					// Go's runtime always imports WASI; the others need none.
					t.Errorf("imports %s.%s; the SDKs should need nothing but %q", im.Module, im.Name, abi.ImportModule)
				}
			}
			if !sends {
				t.Errorf("does not import %s.%s", abi.ImportModule, abi.ImportSend)
			}
			if info.Mode != abi.ModeTransparent {
				t.Errorf("mode %s, want %s", info.Mode, abi.ModeTransparent)
			}
		})
	}
}

// fwdEngine runs one forwarder on the real engine, beside a counter-wat
// daemon whose origin it is given as its peer.
type fwdEngine struct {
	t    *testing.T
	d    *engine.Daemon
	peer uint64
	seq  uint64
}

func newFwdEngine(t *testing.T, dir string) *fwdEngine {
	t.Helper()
	ctx := context.Background()
	rt, err := engine.New(ctx, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	bin, err := os.ReadFile(forwarderFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RegisterModule(ctx, bin, "fwd"); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RegisterModule(ctx, CounterWAT(), "peer"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spawn := func(kind string) *engine.Daemon {
		id, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		d, err := rt.Spawn(ctx, kind, id, engine.SpawnOptions{})
		if err != nil {
			t.Fatalf("spawn %s: %v", kind, err)
		}
		return d
	}
	f := &fwdEngine{t: t, d: spawn("fwd")}
	f.peer = spawn("peer").Origin()
	return f
}

func (f *fwdEngine) deliver(payload string) ([]string, error) {
	f.seq++
	outs, err := f.d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: f.seq, Payload: []byte(payload)})
	var s []string
	for _, o := range outs {
		s = append(s, string(o.Payload))
	}
	return s, err
}

func (f *fwdEngine) expect(payload string, want ...string) {
	f.t.Helper()
	got, err := f.deliver(payload)
	if err != nil {
		f.t.Fatalf("deliver %q: %v", payload, err)
	}
	if !slices.Equal(got, want) {
		f.t.Fatalf("deliver %q emitted %q, want %q", payload, got, want)
	}
}

// expectFail delivers payload, which must fail (and be rolled back) with a
// message containing every one of want.
func (f *fwdEngine) expectFail(payload string, want ...string) {
	f.t.Helper()
	_, err := f.deliver(payload)
	var ee *engine.EventError
	if !errors.As(err, &ee) || !ee.RolledBack {
		f.t.Fatalf("deliver %q: %v, want a rolled-back event error", payload, err)
	}
	for _, w := range want {
		if !strings.Contains(ee.Detail, w) {
			f.t.Fatalf("deliver %q failed with %q, want it to mention %q", payload, ee.Detail, w)
		}
	}
}

func TestForwardersOnEngine(t *testing.T) {
	for _, dir := range forwarders {
		t.Run(dir, func(t *testing.T) {
			f := newFwdEngine(t, dir)
			f.expect("get", "0")
			for _, bad := range []string{"peer", "peer ", "peer 0123", "peer 0123456789abcdeg",
				"peer 0123456789abcdef0", "peer 0000000000000000", "peer  123456789abcdef"} {
				f.expectFail(bad, "usage")
			}
			for i := 1; i <= 9; i++ {
				f.expect("x", strconv.Itoa(i))
			}
			// A tenth event with nowhere to go fails rather than drop it.
			f.expectFail("x", "fwd 10", "no peer")
			f.expect("get", "9")
			if p := f.d.PendingSends(0); len(p) != 0 {
				t.Fatalf("%d messages queued before a peer was set", len(p))
			}

			// Upper case too: the peer is a number, however it is spelt.
			f.expect("peer " + strings.ToUpper(abi.FormatOrigin(f.peer)))
			f.expect("peer " + abi.FormatOrigin(f.peer))
			for i := 10; i <= 25; i++ {
				f.expect("x", strconv.Itoa(i))
				if i%7 == 0 {
					f.expect("get", strconv.Itoa(i)) // get never counts
				}
			}
			f.expect("get", "25")
			f.expect("getx", "26") // only exactly "get" reads
			f.expect("peerx", "27")

			p := f.d.PendingSends(0)
			var got []string
			for _, s := range p {
				if s.Target != f.peer || s.IsPublish() {
					t.Errorf("message %d went to %016x (publish %v), want the peer %016x", s.Seq, s.Target, s.IsPublish(), f.peer)
				}
				got = append(got, string(s.Payload))
			}
			if want := []string{"fwd 10", "fwd 20"}; !slices.Equal(got, want) {
				t.Fatalf("queued %q, want %q", got, want)
			}
			if p[0].Seq != 1 || p[1].Seq != 2 {
				t.Fatalf("outbound seqs %d, %d, want 1, 2", p[0].Seq, p[1].Seq)
			}
		})
	}
}

// fwdHost runs a forwarder on a bare wazero whose send answers code, to
// show a refused forward fails the event, names the code, and does not
// count; WASI is there for forwarder-go's runtime.
type fwdHost struct {
	code  uint32
	sends [][]byte // target's 8 bytes, then the payload
	outs  []string
	fails []string
}

func TestForwardersReportSendCodes(t *testing.T) {
	for _, dir := range forwarders {
		t.Run(dir, func(t *testing.T) {
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			t.Cleanup(func() { rt.Close(ctx) })
			h := &fwdHost{}
			read := func(m api.Module, ptr, n uint32) []byte {
				b, ok := m.Memory().Read(ptr, n)
				if !ok {
					t.Errorf("guest passed [%d, +%d) outside its memory", ptr, n)
				}
				return bytes.Clone(b)
			}
			_, err := rt.NewHostModuleBuilder(abi.ImportModule).
				NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
				h.outs = append(h.outs, string(read(m, ptr, n)))
			}).Export(abi.ImportEmit).
				NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, ptr, n uint32) {
				h.fails = append(h.fails, string(read(m, ptr, n)))
			}).Export(abi.ImportFail).
				NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, target, ptr, n uint32) uint32 {
				if h.code == 0 {
					h.sends = append(h.sends, append(read(m, target, 8), read(m, ptr, n)...))
				}
				return h.code
			}).Export(abi.ImportSend).
				Instantiate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			bin, err := os.ReadFile(forwarderFile(dir))
			if err != nil {
				t.Fatal(err)
			}
			mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions())
			if err != nil {
				t.Fatal(err)
			}
			if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
				if _, err := f.Call(ctx); err != nil {
					t.Fatal(err)
				}
			}
			seq := uint64(0)
			process := func(payload string) int32 {
				t.Helper()
				h.outs, h.fails = nil, nil
				res, err := mod.ExportedFunction(abi.ExportInput).Call(ctx, uint64(len(payload)))
				if err != nil || !mod.Memory().Write(uint32(res[0]), []byte(payload)) {
					t.Fatalf("input %q: %v", payload, err)
				}
				seq++
				res, err = mod.ExportedFunction(abi.ExportProcess).Call(ctx, 0, seq, res[0], uint64(len(payload)))
				if err != nil {
					t.Fatalf("process %q: %v", payload, err)
				}
				return int32(res[0])
			}
			expect := func(payload string, want ...string) {
				t.Helper()
				if rc := process(payload); rc != 0 || !slices.Equal(h.outs, want) {
					t.Fatalf("process %q: rc %d, outputs %q, fails %q; want rc 0 and %q", payload, rc, h.outs, h.fails, want)
				}
			}
			const peer = 0x0123456789abcdef
			expect("peer 0123456789abcdef")
			for i := 1; i <= 9; i++ {
				expect("x", strconv.Itoa(i))
			}
			for _, code := range []uint32{1, 2, 7} {
				h.code = code
				if rc := process("x"); rc == 0 || len(h.outs) != 0 || len(h.fails) != 1 {
					t.Fatalf("send code %d: rc %d, outputs %q, fails %q; want the event failed with one message", code, rc, h.outs, h.fails)
				}
				// Go's and Zig's SDKs map unknown codes to one error and
				// drop the number; the known ones every forwarder names.
				if !strings.Contains(h.fails[0], "fwd 10") || code < 3 && !strings.Contains(h.fails[0], "code "+strconv.Itoa(int(code))) {
					t.Fatalf("send code %d failed the event with %q, want it to name fwd 10 and the code", code, h.fails[0])
				}
				// No rollback here: the count must not have moved by itself.
				h.code = 0
				expect("get", "9")
			}
			if len(h.sends) != 0 {
				t.Fatalf("recorded %d sends while refusing", len(h.sends))
			}
			expect("x", "10")
			want := append(binary.LittleEndian.AppendUint64(nil, peer), "fwd 10"...)
			if len(h.sends) != 1 || !bytes.Equal(h.sends[0], want) {
				t.Fatalf("sends %q, want one %q (target little-endian, then payload)", h.sends, want)
			}
		})
	}
}
