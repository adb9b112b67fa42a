package engine_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// A loop of bulk memory instructions or host calls is stopped by the
// watchdog within its budget, the daemon is rolled back and keeps serving,
// and an honest daemon on the same runtime completes its events meanwhile.
func TestHostileBulkLoopsStoppedAndNeighbourServed(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{
		"fill_loop":     fixture(t, "fill_loop.wasm"),
		"copy_loop":     fixture(t, "copy_loop.wasm"),
		"hostcall_loop": fixture(t, "hostcall_loop.wasm"),
		"counter":       example(t, "counter-wat", "counter-wat.wasm"),
	})
	const hostileEvents, honestEvents = 2, 40
	for _, kind := range []string{"fill_loop", "copy_loop", "hostcall_loop"} {
		t.Run(kind, func(t *testing.T) {
			budget := 200 * time.Millisecond
			bad := spawn(t, rt, kind, engine.SpawnOptions{Limits: engine.Limits{EventTimeout: budget}})
			good := spawn(t, rt, "counter", engine.SpawnOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard
			defer cancel()

			var wg sync.WaitGroup
			errs := make(chan error, hostileEvents)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < hostileEvents; i++ {
					_, err := bad.Deliver(ctx, engine.Event{Sender: 7, Seq: uint64(i + 1), Payload: []byte("go")})
					errs <- err
				}
			}()
			served := 0
			var last string
			for i := 0; i < honestEvents; i++ {
				outs, err := good.Deliver(ctx, engine.Event{Sender: 8, Seq: uint64(i + 1), Payload: []byte("x")})
				if err != nil {
					t.Fatalf("honest event %d: %v", i, err)
				}
				served++
				if len(outs) == 1 {
					last = string(outs[0].Payload)
				}
			}
			wg.Wait()
			close(errs)
			if served != honestEvents || last != strconv.Itoa(honestEvents) {
				t.Fatalf("honest daemon served %d events, last output %q, want %d", served, last, honestEvents)
			}
			n := 0
			for err := range errs {
				n++
				var ee *engine.EventError
				// A loop of clock reads may fill the readings cap before
				// the budget runs out (fast without -race); both stop it.
				readings := kind == "hostcall_loop" && errors.Is(err, engine.ErrReadingsLimit)
				if !errors.As(err, &ee) || !errors.Is(err, engine.ErrEventTimeout) && !readings {
					t.Fatalf("hostile event %d: err = %v, want ErrEventTimeout", n, err)
				}
				if !ee.RolledBack {
					t.Fatalf("hostile event %d: not rolled back: %v", n, err)
				}
			}
			if n != hostileEvents {
				t.Fatalf("%d hostile events answered, want %d", n, hostileEvents)
			}
			if st := bad.Stats(); st.Errors != hostileEvents || st.Failed {
				t.Fatalf("hostile daemon stats = %+v", st)
			}
			if ctx.Err() != nil {
				t.Fatal("hang guard expired")
			}
		})
	}
}
