package instrument

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

const goReactor = "../../abi/testdata/go_reactor.wasm"

// goHost is a runtime with WASI and a wasmesh.emit that records outputs per
// module instance.
type goHost struct {
	r   wazero.Runtime
	out map[string][][]byte
}

func newGoHost(t *testing.T) *goHost {
	ctx := context.Background()
	h := &goHost{r: newRuntime(t, wazero.NewRuntimeConfigCompiler()), out: map[string][][]byte{}}
	wasi_snapshot_preview1.MustInstantiate(ctx, h.r)
	_, err := h.r.NewHostModuleBuilder("wasmesh").NewFunctionBuilder().
		WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) {
			b, _ := m.Memory().Read(ptr, n)
			h.out[m.Name()] = append(h.out[m.Name()], append([]byte(nil), b...))
		}).Export("emit").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *goHost) event(t *testing.T, m api.Module, seq uint64, payload []byte) {
	t.Helper()
	ptr := uint32(call(t, m, "wasmesh_input", uint64(len(payload)))[0])
	if !m.Memory().Write(ptr, payload) {
		t.Fatal("input buffer out of range")
	}
	if rc := call(t, m, "wasmesh_process", 0xabcdef, seq, uint64(ptr), uint64(len(payload)))[0]; rc != 0 {
		t.Fatalf("process returned %d", rc)
	}
}

// TestGoReactor runs a real Go wasip1 c-shared module: the instrumented
// module behaves exactly like the original, and a transparent snapshot made
// of memory plus the reserved global exports restores into a fresh instance
// that continues identically.
func TestGoReactor(t *testing.T) {
	orig := readFile(t, goReactor)
	res := mustInstrument(t, orig, Options{MaxMemoryPages: 4096})
	if len(res.Globals) < 2 {
		t.Fatalf("Go module: only %d mutable globals", len(res.Globals))
	}
	t.Logf("Go reactor: %d bytes -> %d instrumented, %d mutable globals, tables dirty export %q, memory %d..%d pages",
		len(orig), len(res.Module), len(res.Globals), res.TablesDirtyExport, res.MemoryMin, res.MemoryMax)

	h := newGoHost(t)
	ctx := context.Background()
	a := instantiate(t, h.r, orig, "orig")
	b := instantiate(t, h.r, res.Module, "inst")
	call(t, a, "_initialize")
	call(t, b, "_initialize")
	for seq := uint64(1); seq <= 50; seq++ {
		p := bytes.Repeat([]byte{byte(seq)}, int(seq*37))
		h.event(t, a, seq, p)
		h.event(t, b, seq, p)
	}
	if fmt.Sprint(h.out["orig"]) != fmt.Sprint(h.out["inst"]) || len(h.out["orig"]) != 50 {
		t.Fatalf("outputs differ: %d vs %d", len(h.out["orig"]), len(h.out["inst"]))
	}
	last := h.out["inst"][49]
	if binary.LittleEndian.Uint64(last[:8]) != 50 {
		t.Fatalf("event count in last output = %d", binary.LittleEndian.Uint64(last[:8]))
	}
	memA, _ := a.Memory().Read(0, a.Memory().Size())
	memB, _ := b.Memory().Read(0, b.Memory().Size())
	if !bytes.Equal(memA, memB) {
		t.Error("memory of the instrumented instance differs from the original's")
	}

	// Transparent snapshot of b, restored into a fresh instance c.
	if res.TablesDirtyExport != "" && b.ExportedGlobal(res.TablesDirtyExport).Get() != 0 {
		t.Fatal("Go guest mutated its tables: transparent snapshot impossible")
	}
	snapMem, _ := b.Memory().Read(0, b.Memory().Size())
	snapMem = append([]byte(nil), snapMem...)
	snapGlobals := make([]uint64, len(res.Globals))
	for i, g := range res.Globals {
		snapGlobals[i] = b.ExportedGlobal(g.Export).Get()
	}
	c := instantiate(t, h.r, res.Module, "restored")
	if grow := uint32(len(snapMem))/65536 - c.Memory().Size()/65536; grow > 0 {
		if _, ok := c.Memory().Grow(grow); !ok {
			t.Fatal("cannot grow restored memory")
		}
	}
	c.Memory().Write(0, snapMem)
	for i, g := range res.Globals {
		mutable(t, c, g.Export).Set(snapGlobals[i])
	}
	for seq := uint64(51); seq <= 60; seq++ {
		p := []byte(fmt.Sprintf("event %d", seq))
		h.event(t, b, seq, p)
		h.event(t, c, seq, p)
	}
	if fmt.Sprint(h.out["inst"][50:]) != fmt.Sprint(h.out["restored"]) {
		t.Fatalf("restored instance diverged:\n%v\n%v", h.out["inst"][50:], h.out["restored"])
	}
	_ = ctx
}

// BenchmarkGoGuestOverhead is the real-world counterpart of
// BenchmarkLoopOverhead: the Go reactor processes a 64 KiB event (a range
// loop over the payload plus an emit) in the original module, the
// instrumented one, and the original under WithCloseOnContextDone(true).
// Calls are interleaved; reported times are medians.
func BenchmarkGoGuestOverhead(b *testing.B) {
	ctx := context.Background()
	orig := readFile(b, goReactor)
	res := mustInstrument(b, orig, Options{})
	payload := bytes.Repeat([]byte("wasmesh!"), 8192)
	type variant struct {
		name     string
		m        api.Module
		ctx      context.Context
		took     []time.Duration
		input    api.Function
		process  api.Function
		inputPtr uint32
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	load := func(name string, cfg wazero.RuntimeConfig, bin []byte, callCtx context.Context) *variant {
		r := wazero.NewRuntimeWithConfig(ctx, cfg.WithCoreFeatures(CoreFeatures))
		b.Cleanup(func() { r.Close(ctx) })
		wasi_snapshot_preview1.MustInstantiate(ctx, r)
		_, err := r.NewHostModuleBuilder("wasmesh").NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
				[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).
			Export("emit").Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(name))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.ExportedFunction("_initialize").Call(callCtx); err != nil {
			b.Fatal(err)
		}
		v := &variant{name: name, m: m, ctx: callCtx, input: m.ExportedFunction("wasmesh_input"), process: m.ExportedFunction("wasmesh_process")}
		out, err := v.input.Call(callCtx, uint64(len(payload)))
		if err != nil {
			b.Fatal(err)
		}
		v.inputPtr = uint32(out[0])
		m.Memory().Write(v.inputPtr, payload)
		return v
	}
	vs := []*variant{
		load("plain", wazero.NewRuntimeConfigCompiler(), orig, ctx),
		load("instrumented", wazero.NewRuntimeConfigCompiler(), res.Module, ctx),
		load("ctxdone", wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true), orig, cctx),
	}
	stack := make([]uint64, 4)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range vs {
			stack[0], stack[1], stack[2], stack[3] = 1, uint64(i), uint64(v.inputPtr), uint64(len(payload))
			start := time.Now()
			if err := v.process.CallWithStack(v.ctx, stack); err != nil || stack[0] != 0 {
				b.Fatalf("%s: %v %d", v.name, err, stack[0])
			}
			v.took = append(v.took, time.Since(start))
		}
	}
	b.StopTimer()
	med := make([]float64, len(vs))
	for j, v := range vs {
		slices.Sort(v.took)
		med[j] = float64(v.took[len(v.took)/2].Nanoseconds())
		b.ReportMetric(med[j], v.name+"-ns/event")
	}
	b.ReportMetric(med[1]/med[0], "instrumented/plain")
	b.ReportMetric(med[2]/med[0], "ctxdone/plain")
}
