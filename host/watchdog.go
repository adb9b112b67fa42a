package host

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdog preempts guests that overrun their CPU budget. Instead of
// wazero's context-done checking (which slows every call and every loop
// iteration), the instrumented module checks a flag global at function
// entries and loop headers; the watchdog sets that flag from this goroutine.
// It sleeps while no call is in flight, so an idle node costs nothing.
type watchdog struct {
	tick     time.Duration
	now      func() int64
	inflight atomic.Int64
	wake     chan struct{}
	done     chan struct{}
	stopped  sync.Once
	exited   chan struct{}

	mu   sync.Mutex
	live map[*instance]struct{}
	scan []*instance
}

func newWatchdog(tick time.Duration, now func() int64) *watchdog {
	w := &watchdog{
		tick:   tick,
		now:    now,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		live:   make(map[*instance]struct{}),
	}
	go w.run()
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

func (w *watchdog) enter() {
	if w.inflight.Add(1) == 1 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *watchdog) exit() { w.inflight.Add(-1) }

func (w *watchdog) stop() {
	w.stopped.Do(func() { close(w.done) })
	<-w.exited
}

func (w *watchdog) run() {
	defer close(w.exited)
	t := time.NewTimer(w.tick)
	defer t.Stop()
	for {
		if w.inflight.Load() == 0 {
			select {
			case <-w.wake:
			case <-w.done:
				return
			}
			continue
		}
		t.Reset(w.tick)
		select {
		case <-t.C:
		case <-w.done:
			return
		}
		w.sweep()
	}
}

func (w *watchdog) sweep() {
	now := w.now()
	w.mu.Lock()
	w.scan = w.scan[:0]
	for in := range w.live {
		if dl := in.deadline.Load(); dl != 0 && now >= dl {
			w.scan = append(w.scan, in)
		}
	}
	w.mu.Unlock()
	for _, in := range w.scan {
		if dl := in.deadline.Load(); dl != 0 && now >= dl {
			in.preempt(dl)
		}
	}
}
