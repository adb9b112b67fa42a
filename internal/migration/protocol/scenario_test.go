package protocol

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func lossless(t *testing.T, cfg simConfig, pre, during int) *sim {
	t.Helper()
	m := newSim(cfg, pre)
	// Interleave events with the protocol so some land in every phase.
	for len(m.net) > 0 || during > 0 {
		if during > 0 {
			m.inject()
			during--
		}
		if len(m.net) > 0 {
			m.deliver(0)
		}
		for len(m.events) > 0 {
			m.deliverEvent(0)
		}
	}
	m.drain()
	m.finalCheck()
	if len(m.violations) > 0 {
		t.Fatalf("violations:\n%s", m.report())
	}
	return m
}

func TestHappyPathEveryOrchestratorPlacement(t *testing.T) {
	for _, on := range []string{"source", "target", "third"} {
		t.Run(on, func(t *testing.T) {
			m := lossless(t, simConfig{orchOn: on, haveModule: true, transportIdentity: true, limits: DefaultLimits()}, 3, 20)
			if !m.tgtLive || m.srcD != nil {
				t.Fatalf("not handed over: live=%v source daemon=%v", m.tgtLive, m.srcD != nil)
			}
			if done, err := m.orch.Result(); !done || err != nil {
				t.Fatalf("orchestrator: %v %v", done, err)
			}
			if m.tgtD.inputSeq != uint64(len(m.sent)) {
				t.Fatalf("target at %d, sent %d", m.tgtD.inputSeq, len(m.sent))
			}
			for _, want := range []string{"source:protocol.Unsubscribe", "source:protocol.Release", "source:protocol.WipeKey", "target:protocol.Resubscribe", "target:protocol.GoLive"} {
				if !slices.Contains(m.effects, want) {
					t.Errorf("missing effect %s in %v", want, m.effects)
				}
			}
		})
	}
}

// SPEC R-M11: a daemon with empty state still migrates, as one empty chunk.
func TestStatelessDaemonMigrates(t *testing.T) {
	m := lossless(t, simConfig{orchOn: "source", haveModule: true, stateless: true, limits: DefaultLimits()}, 0, 0)
	if !m.tgtLive {
		t.Fatal("stateless daemon did not migrate")
	}
}

func TestModuleFetchedWhenMissing(t *testing.T) {
	m := lossless(t, simConfig{orchOn: "third", haveModule: false, limits: DefaultLimits()}, 1, 2)
	if !m.tgtLive {
		t.Fatalf("did not complete: %v", m.done)
	}
	if !slices.Contains(m.effects, "source:protocol.AllowModuleFetch") || !slices.Contains(m.effects, "target:protocol.FetchModule") {
		t.Fatalf("module was not fetched: %v", m.effects)
	}
}

func TestNotReadyThenSuccess(t *testing.T) {
	m := lossless(t, simConfig{orchOn: "third", haveModule: true, notReadyAttempts: 2, limits: DefaultLimits()}, 2, 5)
	if !m.tgtLive || m.orch.Attempt() != 3 {
		t.Fatalf("live=%v attempt=%d", m.tgtLive, m.orch.Attempt())
	}
	// The source resumed after each refused attempt and froze again.
	if n := strings.Count(strings.Join(m.effects, " "), "source:protocol.ResumeLocal"); n != 2 {
		t.Fatalf("source resumed %d times, want 2", n)
	}
}

func TestBufferOverflowKeepsDaemonAtSource(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxBufferedEvents = 2
	m := newSim(simConfig{orchOn: "third", haveModule: true, limits: lim}, 1)
	m.deliver(0) // Start: source frozen, snapshot taken, Prepare + chunks in flight
	for range 3 {
		m.inject()
	}
	m.drain()
	m.finalCheck()
	if len(m.violations) > 0 {
		t.Fatal(m.report())
	}
	if m.tgtLive || m.srcD == nil || m.srcFrozen {
		t.Fatal("source should keep the daemon")
	}
	if !errors.Is(m.done[RoleSource], &Failure{Reason: BufferOverflow}) || !errors.Is(m.done[RoleOrchestrator], &Failure{Reason: BufferOverflow}) {
		t.Fatalf("results %v", m.done)
	}
}

// A target that crashes mid-migration: the source keeps the daemon, with
// every event, after the peer timeout.
func TestCrashedTargetSourceKeepsOwning(t *testing.T) {
	m := newSim(simConfig{orchOn: "source", haveModule: true, limits: DefaultLimits()}, 2)
	m.deliver(0) // Start
	m.inject()
	m.crashTarget()
	m.inject()
	for range 40 {
		for len(m.net) > 0 {
			m.deliver(0)
		}
		m.tick(time.Second)
		m.inject()
	}
	m.finalCheck()
	if len(m.violations) > 0 {
		t.Fatal(m.report())
	}
	if m.srcD == nil || m.srcFrozen {
		t.Fatal("source does not own the daemon")
	}
	if err := m.done[RoleSource]; !errors.Is(err, &Failure{Reason: TargetUnavailable}) {
		t.Fatalf("source result %v", err)
	}
}

func TestSealRequestedButMissingAborts(t *testing.T) {
	m := newSim(simConfig{orchOn: "third", haveModule: true, transportIdentity: true, noEnvelope: true, limits: DefaultLimits()}, 1)
	m.drain()
	if !errors.Is(m.done[RoleOrchestrator], &Failure{Reason: IdentityTransportFailed}) {
		t.Fatalf("result %v", m.done[RoleOrchestrator])
	}
	if slices.Contains(m.effects, "target:protocol.Admit") {
		t.Fatal("an unsealed snapshot reached the target")
	}
	if m.srcD == nil || m.srcFrozen {
		t.Fatal("source must keep the daemon")
	}
}

func TestNoTransportIdentityNeedsRegisteredIdentity(t *testing.T) {
	m := newSim(simConfig{orchOn: "third", haveModule: true, transportIdentity: false, noRegistered: true, limits: DefaultLimits()}, 1)
	m.drain()
	var f *Failure
	if !errors.As(m.done[RoleOrchestrator], &f) || f.Reason != IdentityTransportFailed || f.Retriable() {
		t.Fatalf("result %v", m.done[RoleOrchestrator])
	}
	m = lossless(t, simConfig{orchOn: "third", haveModule: true, transportIdentity: false, limits: DefaultLimits()}, 1, 1)
	if !m.tgtLive {
		t.Fatal("registered identity: should complete")
	}
}
