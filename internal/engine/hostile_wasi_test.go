package engine_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// A loop of WASI calls is stopped by the CPU budget like a loop of wasmesh
// host calls: each WASI call that reaches the host (stdout, clocks,
// randomness, poll_oneoff's sleep, sched_yield) checks the stop flag, and
// poll_oneoff does not sleep, so a 10 s sleep cannot outlast the budget.
// A loop of 64 MiB stdout writes ran for minutes before: one write took tens
// of milliseconds and the loop header checked the flag every 16384 of them.
// Loops of clock or random reads may hit the per-event readings cap first;
// both end the event and roll it back. An honest daemon on the same runtime
// answers in between.
func TestHostileWASILoopsStopped(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{
		"wasi_loop": fixture(t, "wasi_loop.wasm"),
		"counter":   example(t, "counter-wat", "counter-wat.wasm"),
	})
	bad := spawn(t, rt, "wasi_loop", engine.SpawnOptions{Limits: engine.Limits{EventTimeout: 200 * time.Millisecond}})
	good := spawn(t, rt, "counter", engine.SpawnOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	payloads := []struct {
		op            string
		readingsFirst bool // may hit the readings cap before the budget
	}{{"w", false}, {"b", false}, {"p", false}, {"y", false}, {"c", true}, {"r", true}, {"go", true}}
	for i, p := range payloads {
		_, err := bad.Deliver(ctx, engine.Event{Sender: 7, Seq: uint64(i + 1), Payload: []byte(p.op)})
		var ee *engine.EventError
		if !errors.As(err, &ee) || !ee.RolledBack {
			t.Fatalf("%s: err = %v, want a rolled-back event error", p.op, err)
		}
		if !errors.Is(err, engine.ErrEventTimeout) && !(p.readingsFirst && errors.Is(err, engine.ErrReadingsLimit)) {
			t.Fatalf("%s: err = %v, want ErrEventTimeout", p.op, err)
		}
		outs, err := good.Deliver(ctx, engine.Event{Sender: 8, Seq: uint64(i + 1), Payload: []byte("x")})
		if err != nil || len(outs) != 1 || string(outs[0].Payload) != strconv.Itoa(i+1) {
			t.Fatalf("honest event %d after %s: %v %v", i+1, p.op, outs, err)
		}
	}
	if st := bad.Stats(); st.Errors != uint64(len(payloads)) || st.Failed {
		t.Fatalf("hostile daemon stats = %+v", st)
	}
	if ctx.Err() != nil {
		t.Fatal("hang guard expired")
	}
}
