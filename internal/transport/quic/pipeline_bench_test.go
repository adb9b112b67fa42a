package meshquic

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// daemonOps serves one real engine.Daemon over the pipeline, copying its
// outputs into the reusable response buffers (as PipelineOps allows).
type daemonOps struct {
	*fakeOps
	d   *engine.Daemon
	mu  sync.Mutex
	out engine.Outputs
}

func (o *daemonOps) Apply(ctx context.Context, ev Event, resp *DeliverResponse) error {
	if ev.Target != o.d.Origin() {
		return ErrNotHosted
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.d.DeliverInto(ctx, engine.Event{Sender: ev.Sender, Seq: ev.Seq, Payload: ev.Payload, Once: ev.Once}, &o.out); err != nil {
		return err
	}
	for _, it := range o.out.Items {
		outs := resp.Outputs
		if len(outs) < cap(outs) {
			outs = outs[:len(outs)+1]
		} else {
			outs = append(outs, Output{})
		}
		last := &outs[len(outs)-1]
		last.Link = it.Link.AppendBinary(last.Link[:0])
		last.Payload = append(last.Payload[:0], it.Payload...)
		resp.Outputs = outs
	}
	return nil
}

func (o *daemonOps) Commit(context.Context) error { return nil }

// counterDaemon spawns the counter-wat example on a fresh runtime.
func counterDaemon(b *testing.B) *engine.Daemon {
	b.Helper()
	mod, err := os.ReadFile(filepath.Join("..", "..", "..", "plugins", "examples", "counter-wat", "counter-wat.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt, err := engine.New(ctx, engine.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	if _, err := rt.RegisterModule(ctx, mod, "counter"); err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	id, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	d, err := rt.Spawn(ctx, "counter", id, engine.SpawnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// localRate is the baseline measured in the same run: events/s and
// allocations per event of engine.Daemon.DeliverInto on its own counter
// daemon, 64-byte events.
func localRate(b *testing.B, n int) (rate, allocs float64) {
	d := counterDaemon(b)
	var out engine.Outputs
	ev := engine.Event{Sender: 1, Payload: make([]byte, 64)}
	ctx := context.Background()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	for i := 1; i <= n; i++ {
		ev.Seq = uint64(i)
		if err := d.DeliverInto(ctx, ev, &out); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(t0)
	runtime.ReadMemStats(&m1)
	return float64(n) / el.Seconds(), float64(m1.Mallocs-m0.Mallocs) / float64(n)
}

type pipeBench struct {
	a, srv *Endpoint
	target uint64
}

func newPipeBench(b *testing.B) *pipeBench {
	ca := newCA(b)
	a, srv := newEndpoint(b, ca), newEndpoint(b, ca)
	d := counterDaemon(b)
	srv.ServeLocalOps(&daemonOps{fakeOps: newFakeOps(), d: d})
	a.SetPeerAddr(srv.ID(), srv.Addr().String())
	return &pipeBench{a: a, srv: srv, target: d.Origin()}
}

// run delivers n events from one sender keeping window calls in flight,
// reusing its calls; observe, if set, sees each completed call.
func (pb *pipeBench) run(b *testing.B, sender uint64, n, window int, pace time.Duration, observe func(*DeliverCall, time.Time)) {
	ctx := context.Background()
	done := make(chan *DeliverCall, window)
	starts := make(map[*DeliverCall]time.Time, window)
	payload := make([]byte, 64)
	seq := uint64(0)
	start := func(c *DeliverCall) {
		seq++
		c.To = pb.srv.ID()
		c.Event = Event{Target: pb.target, Sender: sender, Seq: seq, Payload: payload}
		if observe != nil {
			starts[c] = time.Now()
		}
		pb.a.Go(ctx, c)
	}
	sent, got := 0, 0
	next := time.Now()
	for ; sent < min(window, n); sent++ {
		start(&DeliverCall{Done: done})
	}
	for got < n {
		c := <-done
		got++
		if c.Err != nil || len(c.Resp.Outputs) != 1 {
			b.Fatalf("event %d: %v (%d outputs)", c.Event.Seq, c.Err, len(c.Resp.Outputs))
		}
		if observe != nil {
			observe(c, starts[c])
		}
		if sent < n {
			if pace > 0 {
				next = next.Add(pace)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
			start(c)
			sent++
		}
	}
}

func benchPipeline(b *testing.B, senders int) {
	pb := newPipeBench(b)
	pb.run(b, 1, 2000, 128, 0, nil) // connect and warm up
	base, baseAllocs := localRate(b, 100000)
	window := PipeTargetWindow / senders
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		n := b.N / senders
		if s == 0 {
			n += b.N % senders
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pb.run(b, uint64(s+2), n, window, 0, nil)
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	b.StopTimer()
	rate := float64(b.N) / el.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(base, "local-events/s")
	b.ReportMetric(rate/base, "remote/local")
	// allocs/op minus this is what the mesh path adds per event.
	b.ReportMetric(baseAllocs, "local-allocs/event")
}

// BenchmarkPipelineRemote is remote events/s (64-byte events to the
// counter-wat daemon on another endpoint, over real QUIC on loopback) with
// the local DeliverInto rate of the same daemon kind as the same-run
// baseline; allocs/op counts both endpoints.
func BenchmarkPipelineRemote(b *testing.B) {
	b.Run("senders=1", func(b *testing.B) { benchPipeline(b, 1) })
	b.Run("senders=16", func(b *testing.B) { benchPipeline(b, 16) })
}

// BenchmarkPipelineLatency measures p50/p99 of one event's round trip
// (Go to Done) with a sender paced at half the rate the same run measured
// unpaced. The sender sleeps only when it is more than pacingSlack ahead
// of its schedule: spinning would take a core from the pipeline it
// measures, and sleeping before every event would oversleep into bursts.
func BenchmarkPipelineLatency(b *testing.B) {
	const pacingSlack = 50 * time.Microsecond
	pb := newPipeBench(b)
	const probe = 50000
	t0 := time.Now()
	pb.run(b, 1, probe, PipeTargetWindow, 0, nil)
	max := float64(probe) / time.Since(t0).Seconds()
	half := max / 2
	pace := time.Duration(float64(time.Second) / half)
	// The unloaded round trip, one event at a time, for scale.
	idle := make([]time.Duration, 0, 2000)
	pb.run(b, 3, 2000, 1, 0, func(_ *DeliverCall, start time.Time) { idle = append(idle, time.Since(start)) })
	slices.Sort(idle)

	// The paced sender keeps at most this many events in flight, as a
	// client with its own window would: a sender that fell behind its
	// schedule (a GC pause) catches up in a burst no larger than this,
	// not in one as large as the pipeline would take.
	const pool = 512
	calls := make([]DeliverCall, pool)
	starts := make([]time.Time, pool)
	index := make(map[*DeliverCall]int, pool)
	free := make(chan int, pool)
	done := make(chan *DeliverCall, pool)
	for i := range calls {
		calls[i].Done = done
		index[&calls[i]] = i
		free <- i
	}
	durs := make([]time.Duration, 0, b.N)
	recvd := make(chan error, 1)
	go func() {
		for range b.N {
			c := <-done
			i := index[c]
			if c.Err != nil {
				recvd <- c.Err
				return
			}
			durs = append(durs, time.Since(starts[i]))
			free <- i
		}
		recvd <- nil
	}()
	ctx := context.Background()
	payload := make([]byte, 64)
	b.ResetTimer()
	next := time.Now()
	for n := 1; n <= b.N; n++ {
		if d := time.Until(next); d > pacingSlack {
			time.Sleep(d)
		}
		next = next.Add(pace)
		i := <-free
		c := &calls[i]
		c.To = pb.srv.ID()
		c.Event = Event{Target: pb.target, Sender: 2, Seq: uint64(n), Payload: payload}
		starts[i] = time.Now()
		pb.a.Go(ctx, c)
	}
	if err := <-recvd; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(max, "max-events/s")
	b.ReportMetric(half, "paced-events/s")
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(idle[len(idle)/2].Microseconds()), "idle-p50-µs")
}
