package engine

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// fakeFlag stands in for the instrumented module's stop flag.
type fakeFlag struct {
	api.MutableGlobal
	v    uint64
	sets int // times set to 1
}

func (f *fakeFlag) Get() uint64 { return f.v }
func (f *fakeFlag) Set(v uint64) {
	f.v = v
	if v == 1 {
		f.sets++
	}
}

// wdRig drives a watchdog by hand on a fake clock: no goroutine, no sleep,
// so every step of the budget's bound is checked at an exact time.
type wdRig struct {
	clock int64
	w     *watchdog
	rt    *Runtime
	d     *Daemon
	in    *instance
	flag  *fakeFlag
}

func newWDRig(t *testing.T, budget time.Duration) *wdRig {
	t.Helper()
	r := &wdRig{}
	r.w = makeWatchdog(time.Millisecond, func() int64 { return r.clock })
	r.rt = &Runtime{watchdog: r.w, epoch: time.Now()}
	r.d = &Daemon{limits: Limits{EventTimeout: budget}}
	r.flag = &fakeFlag{}
	r.in = &instance{rt: r.rt, d: r.d, stopFlag: r.flag}
	r.w.track(r.in)
	return r
}

// sweepAt sweeps at time t and reports whether the call is preempted.
func (r *wdRig) sweepAt(t int64) bool {
	r.clock = t
	r.w.sweep()
	return r.flag.v == 1
}

// The budget is never cut short although arming reads no clock: a call
// armed at 5 with a budget of 100 is not stopped before 105, and is
// stopped at the first sweep past the bound its epoch gives (one sweep
// interval late at most); the flag is cleared on disarm, and the CPU time
// charged covers the sweeps the call was in flight for.
func TestWatchdogBudgetNeverEarly(t *testing.T) {
	r := newWDRig(t, 100)
	r.w.advance() // the wake-up at 0
	r.clock = 5
	r.in.arm(context.Background())
	for ts := int64(10); ts < 110; ts += 10 {
		if r.sweepAt(ts) {
			t.Fatalf("preempted at %d, armed at 5 with a budget of 100", ts)
		}
	}
	if r.sweepAt(109) {
		t.Fatal("preempted at 109, before the bound of the sweep at 10 plus the budget")
	}
	if !r.sweepAt(110) {
		t.Fatal("not preempted at 110, one sweep interval past the budget")
	}
	if !r.in.disarm() || r.flag.v != 0 {
		t.Fatalf("disarm after a preemption: flag %d, want it reported and cleared", r.flag.v)
	}
	if got := r.d.cpuNanos.Load(); got != 110 {
		t.Fatalf("cpu charged %d, want 110 (the sweeps from 0 to 110)", got)
	}
	if r.sweepAt(200) || r.in.stopping() {
		t.Fatal("an idle instance was preempted")
	}
	if got := r.d.cpuNanos.Load(); got != 110 {
		t.Fatalf("cpu charged %d while idle", got-110)
	}
}

// A call armed while the watchdog slept saw an old epoch: its bound is the
// reading taken when the watchdog woke, not the older one.
func TestWatchdogBudgetAfterSleep(t *testing.T) {
	r := newWDRig(t, 100)
	r.w.advance()
	r.sweepAt(10)
	if active, _ := r.w.sweep(); active || r.w.anyArmed() {
		t.Fatal("watchdog active with nothing armed")
	}
	r.clock = 1000
	r.in.arm(context.Background())
	r.clock = 1003 // woken 3 later
	r.w.advance()
	if r.sweepAt(1013) || r.sweepAt(1099) {
		t.Fatal("preempted before the budget of a call armed at 1000")
	}
	if r.sweepAt(1102) {
		t.Fatal("preempted before the wake-up's bound 1103")
	}
	if !r.sweepAt(1103) {
		t.Fatal("not preempted at the wake-up's bound 1103")
	}
}

// A call that saw the sweep's own epoch may have been armed after that
// sweep read the clock, so that reading does not bound it; the next does.
func TestWatchdogSameEpochWaitsForNextSweep(t *testing.T) {
	r := newWDRig(t, 100)
	r.w.advance()
	r.clock = 10
	r.in.arm(context.Background())
	r.in.armEpoch.Store(r.w.epoch.Load() + 1) // as if armed just after the next advance
	if r.sweepAt(10) {
		t.Fatal("preempted at once")
	}
	if r.in.wdCall != 0 {
		t.Fatal("the sweep took its own reading as the bound of a call armed in its epoch")
	}
	if r.sweepAt(20) || r.sweepAt(119) {
		t.Fatal("preempted before the bound of the sweep at 20")
	}
	if !r.sweepAt(120) {
		t.Fatal("not preempted at 120")
	}
}

// A context deadline stops the call at that time, even before the epoch
// bound is known, and the sweep is scheduled for it.
func TestWatchdogContextDeadline(t *testing.T) {
	r := newWDRig(t, time.Hour)
	r.w.advance()
	ctx, cancel := context.WithDeadline(context.Background(), r.rt.epoch.Add(50))
	defer cancel()
	r.in.arm(ctx)
	r.clock = 10
	if active, next := r.w.sweep(); !active || next != 50 || r.flag.v != 0 {
		t.Fatalf("sweep at 10: active %v next %d flag %d, want the sweep scheduled at 50", active, next, r.flag.v)
	}
	if !r.sweepAt(50) {
		t.Fatal("not preempted at the context deadline")
	}
}

// A preemption decided for one call never lands on the next: the flag is
// set only while the call the watchdog saw is still armed.
func TestWatchdogPreemptStaleCall(t *testing.T) {
	r := newWDRig(t, 100)
	r.in.arm(context.Background())
	old := r.in.armed.Load()
	r.in.disarm()
	r.in.arm(context.Background())
	r.in.preempt(old)
	if r.flag.v != 0 || r.in.stopping() {
		t.Fatal("a preemption for an ended call reached the next one")
	}
	if r.in.disarm() {
		t.Fatal("disarm reported a preemption")
	}
}

// With its goroutine running, the watchdog wakes for a call, preempts it at
// its budget, and goes back to sleep once nothing runs: an idle node costs
// no timer wake-ups.
func TestWatchdogSleepsWhenIdle(t *testing.T) {
	epoch := time.Now()
	w := newWatchdog(time.Millisecond, func() int64 { return int64(time.Since(epoch)) })
	defer w.stop()
	flag := &fakeFlag{}
	in := &instance{rt: &Runtime{watchdog: w, epoch: epoch}, d: &Daemon{limits: Limits{EventTimeout: time.Millisecond}}, stopFlag: flag}
	w.track(in)
	in.arm(context.Background())
	for !in.stopping() {
		time.Sleep(100 * time.Microsecond) // the call "runs" until preempted
	}
	if !in.disarm() {
		t.Fatal("disarm did not report the preemption")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !w.sleeping.Load() {
		if time.Now().After(deadline) {
			t.Fatal("watchdog still awake 10 s after the last call")
		}
		time.Sleep(time.Millisecond)
	}
	if in.d.cpuNanos.Load() < int64(time.Millisecond) {
		t.Fatalf("charged %v for a call preempted at a 1ms budget", time.Duration(in.d.cpuNanos.Load()))
	}
}

// Preemptions racing with calls ending: every flag the watchdog sets is
// reported by that call's disarm and cleared, and no call starts with the
// flag set.
func TestWatchdogPreemptRacesDisarm(t *testing.T) {
	r := newWDRig(t, time.Hour)
	const calls = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			if w := r.in.armed.Load(); w&armedInFlight != 0 {
				if n%2 == 0 {
					runtime.Gosched() // often the call is over when we get to it
				}
				r.in.preempt(w)
			}
			if r.in.armed.Load()>>armedShift >= calls {
				return
			}
		}
	}()
	reported := 0
	for i := 0; i < calls; i++ {
		r.in.stopMu.Lock()
		leaked := r.flag.v
		r.in.stopMu.Unlock()
		if leaked != 0 {
			t.Fatalf("call %d starts with the stop flag set", i)
		}
		r.in.arm(context.Background())
		for j := 0; i%2 == 0 && j < 100 && !r.in.stopping(); j++ {
			runtime.Gosched() // every other call runs until caught (or a while)
		}
		if r.in.disarm() {
			reported++
		}
	}
	<-done
	if r.flag.sets != reported || reported == 0 {
		t.Fatalf("flag set %d times, %d preemptions reported (want equal and not 0)", r.flag.sets, reported)
	}
	t.Logf("%d of %d calls preempted", reported, calls)
}
