package protocol

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestModel drives the three machines over a hostile simulated network with
// events arriving at the source throughout, and checks after every step that
// there is never more than one active owner and no event is applied twice,
// and at the end that nothing was lost: the target has every event if it
// went live, or the source has every event if it kept the daemon.
func TestModel(t *testing.T) {
	outcomes := map[string]int{}
	rapid.Check(t, func(rt *rapid.T) {
		lim := DefaultLimits()
		lim.ChunkSize = rapid.IntRange(1, 64).Draw(rt, "chunkSize")
		lim.MaxBufferedEvents = rapid.SampledFrom([]int{3, 1000}).Draw(rt, "bufferLimit")
		lim.MaxBatchEvents = rapid.IntRange(1, 8).Draw(rt, "batch")
		cfg := simConfig{
			orchOn:            rapid.SampledFrom([]string{"source", "target", "third"}).Draw(rt, "orchestrator"),
			notReadyAttempts:  uint32(rapid.IntRange(0, 2).Draw(rt, "notReady")),
			haveModule:        rapid.Bool().Draw(rt, "haveModule"),
			transportIdentity: rapid.Bool().Draw(rt, "transportIdentity"),
			stateless:         rapid.Bool().Draw(rt, "stateless"),
			limits:            lim,
		}
		lossy := rapid.Bool().Draw(rt, "lossy")
		canCrash := rapid.Bool().Draw(rt, "canCrash")
		m := newSim(cfg, rapid.IntRange(0, 5).Draw(rt, "preEvents"))

		steps := rapid.IntRange(10, 150).Draw(rt, "steps")
		for range steps {
			action := rapid.IntRange(0, 10).Draw(rt, "action")
			switch {
			case action <= 2:
				m.inject()
			case action <= 5 && len(m.net) > 0:
				m.deliver(rapid.IntRange(0, len(m.net)-1).Draw(rt, "pkt"))
			case action == 6 && len(m.net) > 0 && lossy:
				i := rapid.IntRange(0, len(m.net)-1).Draw(rt, "drop")
				m.net = append(m.net[:i], m.net[i+1:]...)
			case action == 6 && len(m.net) > 0:
				i := rapid.IntRange(0, len(m.net)-1).Draw(rt, "dup")
				m.net = append(m.net, m.net[i])
			case action == 7 && len(m.events) > 0:
				m.deliverEvent(rapid.IntRange(0, len(m.events)-1).Draw(rt, "ev"))
			case action == 8:
				m.tick(time.Duration(rapid.IntRange(100, 5000).Draw(rt, "ms")) * time.Millisecond)
			case action == 9 && canCrash && rapid.IntRange(0, 9).Draw(rt, "crashRoll") == 0:
				m.crashTarget()
			case action == 10 && m.alive(m.o) && rapid.IntRange(0, 19).Draw(rt, "cancelRoll") == 0:
				out, err := m.orch.Cancel(m.now)
				m.check(err)
				m.apply(RoleOrchestrator, out)
			}
			if m.activeOwners() > 1 {
				m.violate("two active owners")
			}
			if len(m.violations) > 0 {
				rt.Fatalf("invariant broken:\n%s", m.report())
			}
		}
		m.drain()
		m.finalCheck()
		if len(m.violations) > 0 {
			rt.Fatalf("invariant broken:\n%s\neffects: %v", m.report(), m.effects)
		}
		if m.tgtCrashed {
			outcomes["target crashed"]++
		}
		switch {
		case m.tgtLive:
			outcomes["completed"]++
		case m.crashLive:
			outcomes["owner crashed"]++
		default:
			outcomes["source kept"]++
		}
	})
	// The model is only meaningful if both outcomes actually happen.
	if outcomes["completed"] == 0 || outcomes["source kept"] == 0 {
		t.Fatalf("model never exercised both outcomes: %v", outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
}
