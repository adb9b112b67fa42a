package instrument

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// BenchmarkLoopOverhead runs three guest workloads three ways in the same
// run: the original module, the instrumented one, and the original under
// wazero's WithCloseOnContextDone(true). Calls are interleaved so machine
// noise hits all variants alike, and the reported times are medians (this
// machine is shared; means drift with other load). Workloads:
//
//	sum:   sum 0..1e6 in a loop of ~1 cycle per iteration, the worst case
//	fnv:   FNV-1a over 1e6 bytes, a loop whose body does real work
//	calls: a call tree of 2^20 calls and no loops
//
// Metrics: <variant>-ns/call and instrumented/plain, ctxdone/plain,
// noflow/plain (loop counts kept in each function: see "The count across
// calls") ratios.
func BenchmarkLoopOverhead(b *testing.B) {
	ctx := context.Background()
	orig := readFile(b, "testdata/spin.wasm")
	res := mustInstrument(b, orig, Options{})
	load := func(cfg wazero.RuntimeConfig, bin []byte) api.Module {
		r := wazero.NewRuntimeWithConfig(ctx, cfg.WithCoreFeatures(CoreFeatures))
		b.Cleanup(func() { r.Close(ctx) })
		m, err := r.Instantiate(ctx, bin)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	plain := load(wazero.NewRuntimeConfigCompiler(), orig)
	inst := load(wazero.NewRuntimeConfigCompiler(), res.Module)
	noflow := load(wazero.NewRuntimeConfigCompiler(), mustInstrument(b, orig, Options{noCountFlow: true}).Module)
	ctxdone := load(wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true), orig)
	cctx, cancel := context.WithCancel(ctx) // a cancellable context, as a host would pass
	defer cancel()

	for _, w := range []struct {
		name, fn string
		arg      uint64
	}{{"sum", "sum", 1_000_000}, {"fnv", "fnv", 1_000_000}, {"calls", "tree", 20}} {
		b.Run(w.name, func(b *testing.B) {
			variants := []struct {
				name string
				fn   api.Function
				ctx  context.Context
				took []time.Duration
			}{
				{name: "plain", fn: plain.ExportedFunction(w.fn), ctx: ctx},
				{name: "instrumented", fn: inst.ExportedFunction(w.fn), ctx: ctx},
				{name: "ctxdone", fn: ctxdone.ExportedFunction(w.fn), ctx: cctx},
				{name: "noflow", fn: noflow.ExportedFunction(w.fn), ctx: ctx},
			}
			stack := make([]uint64, 1)
			var want uint64
			for i := range variants { // warm up and agree
				stack[0] = w.arg
				if err := variants[i].fn.CallWithStack(variants[i].ctx, stack); err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					want = stack[0]
				} else if stack[0] != want {
					b.Fatalf("%s: result %d, want %d", variants[i].name, stack[0], want)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range variants {
					v := &variants[j]
					stack[0] = w.arg
					start := time.Now()
					if err := v.fn.CallWithStack(v.ctx, stack); err != nil {
						b.Fatal(err)
					}
					v.took = append(v.took, time.Since(start))
				}
			}
			b.StopTimer()
			med := make([]float64, len(variants))
			for j, v := range variants {
				slices.Sort(v.took)
				med[j] = float64(v.took[len(v.took)/2].Nanoseconds())
				b.ReportMetric(med[j], v.name+"-ns/call")
			}
			b.ReportMetric(med[1]/med[0], "instrumented/plain")
			b.ReportMetric(med[2]/med[0], "ctxdone/plain")
			b.ReportMetric(med[3]/med[0], "noflow/plain")
		})
	}
}

// BenchmarkInstrumentGoReactor derives the run module of a 1.8 MB Go guest.
func BenchmarkInstrumentGoReactor(b *testing.B) {
	bin := readFile(b, goReactor)
	b.SetBytes(int64(len(bin)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Instrument(bin, Options{MaxMemoryPages: 4096}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBulkOverhead runs bulk-memory workloads on the original and the
// instrumented module in the same run (interleaved, medians, as
// BenchmarkLoopOverhead), to price $charge and the chunked helpers:
//
//	fill:  one memory.fill of 32 MiB
//	copy:  one memory.copy of 32 MiB
//	small: 1e5 memory.copy of 16 constant bytes in a loop (native, uncharged)
//	smallvar: 1e5 memory.copy of 16 bytes whose count is not a constant
//	       (one $copy helper call, so one $charge call, each)
func BenchmarkBulkOverhead(b *testing.B) {
	ctx := context.Background()
	orig := readFile(b, "testdata/bulk.wasm")
	res := mustInstrument(b, orig, Options{})
	load := func(bin []byte) api.Module {
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(CoreFeatures))
		b.Cleanup(func() { r.Close(ctx) })
		m, err := r.Instantiate(ctx, bin)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	plain, inst := load(orig), load(res.Module)
	for _, w := range []struct {
		name, fn string
		arg      uint64
	}{{"fill", "fill", 32 << 20}, {"copy", "copy", 32 << 20}, {"small", "small", 100_000}, {"smallvar", "smallvar", 100_000}} {
		b.Run(w.name, func(b *testing.B) {
			fns := []api.Function{plain.ExportedFunction(w.fn), inst.ExportedFunction(w.fn)}
			took := make([][]time.Duration, 2)
			stack := make([]uint64, 1)
			for i := 0; i < b.N; i++ {
				for j, fn := range fns {
					stack[0] = w.arg
					start := time.Now()
					if err := fn.CallWithStack(ctx, stack); err != nil {
						b.Fatal(err)
					}
					took[j] = append(took[j], time.Since(start))
					if stack[0] != w.arg {
						b.Fatalf("%s: result %d, want %d", w.fn, stack[0], w.arg)
					}
				}
			}
			med := make([]float64, 2)
			for j := range took {
				slices.Sort(took[j])
				med[j] = float64(took[j][len(took[j])/2].Nanoseconds())
			}
			b.ReportMetric(med[0], "plain-ns/call")
			b.ReportMetric(med[1], "instrumented-ns/call")
			b.ReportMetric(med[1]/med[0], "instrumented/plain")
		})
	}
}
