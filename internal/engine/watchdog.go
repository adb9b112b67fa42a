package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdog preempts guests that overrun their CPU budget. Instead of
// wazero's context-done checking (which slows every call and every loop
// iteration), the instrumented module checks a flag global at function
// entries and loop headers; the watchdog sets that flag from this goroutine.
//
// Arming a call reads no clock: it records the watchdog's epoch, a counter
// each sweep advances before it reads the clock. A call that saw epoch k
// was armed before sweep k+1 read its clock, so that reading plus the
// budget is a deadline that is never early, and at most one sweep interval
// late; the sweep after it is scheduled for that deadline. The watchdog
// also samples CPU time: each sweep charges the interval since the last one
// to every call in flight, which over many events or a long one adds up to
// the time spent in the guest without two clock reads per event.
//
// It sleeps once a sweep finds no call armed and none made since the last
// one, so an idle node costs nothing; arming wakes it.
type watchdog struct {
	tick     time.Duration
	now      func() int64
	epoch    atomic.Uint64
	sleeping atomic.Bool
	wake     chan struct{}
	done     chan struct{}
	stopped  sync.Once
	exited   chan struct{}

	// lastNow is the clock at the latest epoch advance (watchdog goroutine only).
	lastNow int64

	mu   sync.Mutex
	live map[*instance]struct{}
	scan []overdue
}

type overdue struct {
	in   *instance
	call uint64
}

// minSweepGap keeps a sweep scheduled for a deadline from spinning.
const minSweepGap = 50 * time.Microsecond

func newWatchdog(tick time.Duration, now func() int64) *watchdog {
	w := makeWatchdog(tick, now)
	go w.run()
	return w
}

func makeWatchdog(tick time.Duration, now func() int64) *watchdog {
	w := &watchdog{
		tick:   tick,
		now:    now,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		live:   make(map[*instance]struct{}),
	}
	w.sleeping.Store(true)
	return w
}

func (w *watchdog) track(in *instance) {
	w.mu.Lock()
	w.live[in] = struct{}{}
	w.mu.Unlock()
}

func (w *watchdog) untrack(in *instance) {
	w.mu.Lock()
	delete(w.live, in)
	w.mu.Unlock()
}

// kick wakes a sleeping watchdog after a call was armed. The armed store
// comes before the sleeping load, and the watchdog stores sleeping before
// it looks for armed calls one last time, so one of them sees the other.
func (w *watchdog) kick() {
	if w.sleeping.Load() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *watchdog) stop() {
	w.stopped.Do(func() { close(w.done) })
	<-w.exited
}

func (w *watchdog) run() {
	defer close(w.exited)
	t := time.NewTimer(w.tick)
	t.Stop()
	defer t.Stop()
	for {
		if w.sleeping.Load() {
			select {
			case <-w.wake:
			case <-w.done:
				return
			}
			w.sleeping.Store(false)
			// Calls armed while asleep saw an older epoch: advancing it
			// now bounds their start by this reading, not the next sweep's.
			w.advance()
		}
		t.Reset(w.tick)
		select {
		case <-t.C:
		case <-w.done:
			return
		}
		for {
			active, next := w.sweep()
			if !active {
				w.sleeping.Store(true)
				if w.anyArmed() {
					w.sleeping.Store(false)
				}
				break
			}
			wait := time.Duration(next - w.lastNow)
			if next == 0 || wait >= w.tick {
				break
			}
			// A deadline falls before the next tick: sweep at it.
			t.Reset(max(wait, minSweepGap))
			select {
			case <-t.C:
			case <-w.done:
				return
			}
		}
	}
}

// advance starts a new epoch and returns it with the clock read after it.
func (w *watchdog) advance() (uint64, int64) {
	e := w.epoch.Add(1)
	now := w.now()
	w.lastNow = now
	return e, now
}

func (w *watchdog) anyArmed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for in := range w.live {
		if in.armed.Load()&armedInFlight != 0 {
			return true
		}
	}
	return false
}

// sweep preempts the calls past their deadline. It reports whether any
// call is armed or was armed since the last sweep, and the earliest
// deadline still ahead (0 if none is known yet).
func (w *watchdog) sweep() (active bool, next int64) {
	prev := w.lastNow
	e, now := w.advance()
	w.mu.Lock()
	w.scan = w.scan[:0]
	for in := range w.live {
		call := in.armed.Load()
		if call != in.wdLast {
			in.wdLast, active = call, true
		}
		if call&armedInFlight == 0 {
			continue
		}
		active = true
		armEpoch, ctxDL := in.armEpoch.Load(), in.ctxDeadline.Load()
		if in.armed.Load() != call {
			continue // it ended (and maybe another began) while we read
		}
		in.d.cpuNanos.Add(now - prev)
		if call&armedFired != 0 {
			continue
		}
		var dl int64 // 0: no deadline known yet
		if in.wdCall != call && armEpoch < e {
			// Armed before epoch armEpoch+1 began: by this reading if that
			// is this epoch, else by the previous one. A call armed after
			// this epoch began gets its bound at the next sweep.
			from := now
			if armEpoch+1 < e {
				from = prev
			}
			in.wdCall, in.wdDeadline = call, from+int64(in.d.limits.EventTimeout)
		}
		if in.wdCall == call {
			dl = in.wdDeadline
		}
		if ctxDL != 0 && (dl == 0 || ctxDL < dl) {
			dl = ctxDL
		}
		if dl == 0 {
			continue
		}
		if now >= dl {
			w.scan = append(w.scan, overdue{in, call})
		} else if next == 0 || dl < next {
			next = dl
		}
	}
	w.mu.Unlock()
	for _, o := range w.scan {
		o.in.preempt(o.call)
	}
	return active, next
}
