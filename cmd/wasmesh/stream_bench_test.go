package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// BenchmarkStreamSend is `seq 1 N | wasmesh send NAME --stdin` (N = 200000,
// or WASMESH_BENCH_EVENTS) to a counter on the node the CLI talks to
// (local) and on another node (remote), against `wasmesh run` on the same
// module and input, all in this process and in the same run; it reports
// events/s of each and the ratios send ÷ run of the wall times (goal ≤ 3).
// Nodes acknowledge under DurabilitySync, as by default.
//
//	go test -run '^$' -bench StreamSend -benchtime 1x ./cmd/wasmesh/
//
// It also reports the CPU time the process spent per event on each path
// (the CLI and both nodes run in it), which other load on the machine
// does not inflate the way it does wall times.
func BenchmarkStreamSend(b *testing.B) {
	events := 200000
	if s := os.Getenv("WASMESH_BENCH_EVENTS"); s != "" {
		var err error
		if events, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	var in strings.Builder
	for i := 1; i <= events; i++ {
		in.WriteString(strconv.Itoa(i))
		in.WriteByte('\n')
	}
	input := in.String()
	ctx := context.Background()
	start := func(name string, join ...string) (*node.Node, string) {
		n, err := node.New(ctx, node.Config{DataDir: b.TempDir(), Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join, Dev: true,
			Durability: node.Durability(os.Getenv("WASMESH_BENCH_DURABILITY"))})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close(context.Background()) })
		srv := httptest.NewServer(admin.Handler(n, admin.Options{}))
		b.Cleanup(srv.Close)
		return n, srv.URL
	}
	a, aURL := start("a")
	_, _ = start("b", a.GossipAddr())
	mod := examplePath("counter-wat", "counter-wat.wasm")
	wasm, err := os.ReadFile(mod)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Deploy(ctx, wasm, "counter"); err != nil {
		b.Fatal(err)
	}
	if _, err := a.Spawn(ctx, node.SpawnRequest{Kind: "counter", Name: "here"}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		_, err := a.Spawn(ctx, node.SpawnRequest{Kind: "counter", Name: "there", On: "b"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("spawn on b: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpu := map[string]time.Duration{}
	allocs := map[string]uint64{}
	timed := func(args ...string) time.Duration {
		b.Helper()
		var out bytes.Buffer
		var errb bytes.Buffer
		c0 := processCPU()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		code := run(append([]string{"wasmesh"}, args...), strings.NewReader(input), &out, &errb)
		d := time.Since(t0)
		cpu[args[1]] += processCPU() - c0
		runtime.ReadMemStats(&m1)
		allocs[args[1]] += m1.Mallocs - m0.Mallocs
		if code != 0 {
			b.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != events {
			b.Fatalf("%v: %d outputs for %d events", args, lines, events)
		}
		return d
	}
	var tRun, tLocal, tRemote time.Duration
	b.ResetTimer()
	for range b.N {
		tRun += timed("run", mod, "--quiet-logs")
		if os.Getenv("WASMESH_BENCH_REMOTE_ONLY") == "" { // for profiling the remote path
			tLocal += timed("send", "here", "--stdin", "--node", aURL)
		}
		if os.Getenv("WASMESH_BENCH_LOCAL_ONLY") == "" { // for profiling the local path
			tRemote += timed("send", "there", "--stdin", "--node", aURL)
		}
	}
	rate := func(d time.Duration) float64 { return float64(events*b.N) / d.Seconds() }
	b.ReportMetric(rate(tRun), "run-ev/s")
	b.ReportMetric(rate(tLocal), "local-ev/s")
	b.ReportMetric(rate(tRemote), "remote-ev/s")
	// CPU time of the whole process (CLI and both nodes) per event: what
	// the path costs, whatever else the machine runs meanwhile.
	perEvent := func(k string) float64 { return float64(cpu[k].Nanoseconds()) / float64(events*b.N) }
	b.ReportMetric(perEvent(mod), "run-cpu-ns/ev")
	b.ReportMetric(float64(allocs["there"])/float64(events*b.N), "remote-allocs/ev")
	b.ReportMetric(float64(allocs["here"])/float64(events*b.N), "local-allocs/ev")
	b.ReportMetric(perEvent("here"), "local-cpu-ns/ev")
	b.ReportMetric(perEvent("there"), "remote-cpu-ns/ev")
	b.ReportMetric(float64(tLocal)/float64(tRun), "local/run")
	b.ReportMetric(float64(tRemote)/float64(tRun), "remote/run")
}
