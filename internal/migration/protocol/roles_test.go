package protocol

import (
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

var h1 = wire.Header{ID: 1, Attempt: 1}

func startedSource(t *testing.T) *Source {
	t.Helper()
	s, err := NewSource(SourceConfig{Self: "S"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step("O", wire.Start{Header: h1, Plan: testPlan()}, t0); err != nil {
		t.Fatal(err)
	}
	return s
}

func prepared(snapshot []byte, inputSeq uint64) wire.Prepare {
	return wire.Prepare{Header: h1, Plan: testPlan(), SnapshotSeq: 5, InputSeq: inputSeq, TotalBytes: uint64(len(snapshot)),
		ChunkCount: 1, Envelope: []byte("env")}
}

// restoredTarget walks a target to Replay with the snapshot restored at inputSeq 10.
func restoredTarget(t *testing.T) *Target {
	t.Helper()
	tg, err := NewTarget(TargetConfig{Self: "T"})
	if err != nil {
		t.Fatal(err)
	}
	snap := []byte("state")
	steps := []func() (Output, error){
		func() (Output, error) { return tg.Step("S", prepared(snap, 10), t0) },
		func() (Output, error) { return tg.Handle(Admission{Attempt: 1, Ready: true, HaveModule: true}, t0) },
		func() (Output, error) {
			return tg.Step("S", Split(h1, simOrigin, 5, snap, 1024)[0], t0)
		},
		func() (Output, error) { return tg.Handle(Restored{Attempt: 1, InputSeq: 10}, t0) },
	}
	for i, f := range steps {
		if _, err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if tg.Phase() != PhaseReplay {
		t.Fatalf("phase %s", tg.Phase())
	}
	return tg
}

func ev(seq uint64) wire.Event {
	return wire.Event{Seq: seq, Sender: 1, SenderSeq: seq, Payload: []byte{byte(seq)}}
}

func countEffects[T Effect](out Output) int {
	n := 0
	for _, e := range out.Effects {
		if _, ok := e.(T); ok {
			n++
		}
	}
	return n
}

func TestSourceWrongPhase(t *testing.T) {
	s := startedSource(t)
	for _, m := range []struct {
		from NodeID
		msg  Message
	}{
		{"O", wire.Cutover{Header: h1}},
		{"T", wire.RestoreComplete{Header: h1}},
		{"T", wire.ReplayAck{Header: h1}},
		{"T", wire.ActivateAck{Header: h1}},
		{"T", wire.NotReady{Header: h1}},
	} {
		out, err := s.Step(m.from, m.msg, t0)
		if !errors.Is(err, ErrWrongPhase) || !out.Empty() || s.Phase() != PhaseSnapshot {
			t.Errorf("%s in snapshot phase: %v, phase %s", m.msg.Kind(), err, s.Phase())
		}
	}
	fresh, _ := NewSource(SourceConfig{Self: "S"})
	if _, err := fresh.Step("O", wire.Cutover{Header: h1}, t0); !errors.Is(err, ErrWrongPhase) {
		t.Errorf("cutover before start: %v", err)
	}
}

func TestSourceUnexpectedSender(t *testing.T) {
	s := startedSource(t)
	for _, m := range []struct {
		from NodeID
		msg  Message
	}{
		{"T", wire.Cutover{Header: h1}},                       // only the orchestrator orders cutover
		{"X", wire.NeedModule{Header: h1, Digest: simDigest}}, // a stranger may not fetch the module
		{"O", wire.RestoreComplete{Header: h1}},
		{"X", wire.Abort{Header: h1, Phase: 1, Reason: Cancelled}},
		{"O", wire.NotReady{Header: h1}},
	} {
		out, err := s.Step(m.from, m.msg, t0)
		if !errors.Is(err, ErrUnexpectedSender) || !out.Empty() || s.Phase() != PhaseSnapshot {
			t.Errorf("%s from %s: %v", m.msg.Kind(), m.from, err)
		}
	}
	fresh, _ := NewSource(SourceConfig{Self: "S"})
	if _, err := fresh.Step("X", wire.Start{Header: h1, Plan: testPlan()}, t0); !errors.Is(err, ErrUnexpectedSender) {
		t.Errorf("start from a node that is not the named orchestrator: %v", err)
	}
}

func TestSourceAlreadyMigrating(t *testing.T) {
	s := startedSource(t)
	out, err := s.Step("O", wire.Start{Header: wire.Header{ID: 2, Attempt: 1}, Plan: testPlan()}, t0)
	if !errors.Is(err, ErrAlreadyMigrating) {
		t.Fatalf("got %v", err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("want one Abort reply, got %v", out.Messages)
	}
	a, ok := out.Messages[0].Msg.(wire.Abort)
	if !ok || a.Reason != AlreadyMigrating || a.ID != 2 {
		t.Fatalf("reply %#v", out.Messages[0].Msg)
	}
}

func TestSourceRefusesForeignModuleAndLateOrchestratorAbort(t *testing.T) {
	s := startedSource(t)
	if _, err := s.Handle(SnapshotTaken{Attempt: 1, Snapshot: []byte("x"), SnapshotSeq: 5, InputSeq: 10, Envelope: []byte("e")}, t0); err != nil {
		t.Fatal(err)
	}
	other := "sha256:" + "ff" + simDigest[9:]
	if _, err := s.Step("T", wire.NeedModule{Header: h1, Digest: other}, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other module: %v", err)
	}
	for _, step := range []struct {
		from NodeID
		m    Message
	}{{"T", wire.RestoreComplete{Header: h1, RestoredInputSeq: 10}}, {"O", wire.Cutover{Header: h1}}} {
		if _, err := s.Step(step.from, step.m, t0); err != nil {
			t.Fatal(err)
		}
	}
	// After Activate, only the target may release the daemon.
	if _, err := s.Step("O", wire.Abort{Header: h1, Phase: PhaseCutover, Reason: Cancelled}, t0); !errors.Is(err, ErrPastCutover) {
		t.Fatalf("orchestrator abort after activate: %v", err)
	}
	out, err := s.Step("T", wire.Abort{Header: h1, Phase: PhaseCutover, Reason: Timeout}, t0)
	if err != nil || countEffects[ResumeLocal](out) != 1 {
		t.Fatalf("target abort after activate: %v %v", err, out.Effects)
	}
}

func TestTargetWrongPhase(t *testing.T) {
	tg, _ := NewTarget(TargetConfig{Self: "T"})
	chunk := Split(h1, simOrigin, 5, []byte("s"), 8)[0]
	if _, err := tg.Step("S", chunk, t0); !errors.Is(err, ErrWrongPhase) {
		t.Fatalf("chunk before prepare: %v", err)
	}
	if _, err := tg.Step("S", prepared([]byte("s"), 10), t0); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(11)}}, wire.Activate{Header: h1, FinalSeq: 11}} {
		out, err := tg.Step("S", m, t0)
		if !errors.Is(err, ErrWrongPhase) || !out.Empty() || tg.Phase() != PhaseTransfer {
			t.Errorf("%s before restore: %v", m.Kind(), err)
		}
	}
	if _, err := tg.Step("O", wire.Complete{Header: h1}, t0); !errors.Is(err, ErrWrongPhase) {
		t.Errorf("complete before live: %v", err)
	}
	if _, err := tg.Handle(Restored{Attempt: 1, InputSeq: 10}, t0); !errors.Is(err, ErrWrongPhase) {
		t.Errorf("restored before restore was asked: %v", err)
	}
}

func TestTargetUnexpectedSender(t *testing.T) {
	tg, _ := NewTarget(TargetConfig{Self: "T"})
	if _, err := tg.Step("X", prepared(nil, 0), t0); !errors.Is(err, ErrUnexpectedSender) {
		t.Fatalf("prepare from a node that is not the named source: %v", err)
	}
	tg = restoredTarget(t)
	for _, m := range []struct {
		from NodeID
		msg  Message
	}{
		{"O", wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(11)}}},
		{"X", wire.Activate{Header: h1, FinalSeq: 10}},
		{"X", wire.Abort{Header: h1, Phase: 1, Reason: Cancelled}},
		{"S", wire.Complete{Header: h1}},
	} {
		out, err := tg.Step(m.from, m.msg, t0)
		if !errors.Is(err, ErrUnexpectedSender) || !out.Empty() || tg.Phase() != PhaseReplay {
			t.Errorf("%s from %s: %v", m.msg.Kind(), m.from, err)
		}
	}
}

func TestTargetReplayDedupAndGap(t *testing.T) {
	tg := restoredTarget(t)
	out, err := tg.Step("S", wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(9), ev(10), ev(11), ev(12)}}, t0)
	if err != nil || countEffects[ApplyEvent](out) != 2 {
		t.Fatalf("applied %d (want 11 and 12 only): %v", countEffects[ApplyEvent](out), err)
	}
	out, err = tg.Step("S", wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(12)}}, t0)
	if err != nil || countEffects[ApplyEvent](out) != 0 {
		t.Fatalf("duplicate applied again: %v", err)
	}
	out, err = tg.Step("S", wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(14), ev(15)}}, t0)
	if !errors.Is(err, ErrReplayGap) || countEffects[ApplyEvent](out) != 0 {
		t.Fatalf("gap: %v", err)
	}
	ack, ok := out.Messages[0].Msg.(wire.ReplayAck)
	if !ok || ack.UpTo != 12 {
		t.Fatalf("ack after gap %#v", out.Messages)
	}
}

// SPEC R-M12: retried chunk, Prepare and Activate are answered, not re-applied.
func TestTargetIdempotentRetries(t *testing.T) {
	tg := restoredTarget(t)
	chunk := Split(h1, simOrigin, 5, []byte("state"), 1024)[0]
	for _, m := range []Message{chunk, prepared([]byte("state"), 10)} {
		out, err := tg.Step("S", m, t0)
		if err != nil || countEffects[RestoreSnapshot](out) != 0 {
			t.Fatalf("retried %s: %v %v", m.Kind(), err, out.Effects)
		}
		if got := sentKinds(out)[wire.KindRestoreComplete]; len(got) != 2 {
			t.Fatalf("retried %s not answered with RestoreComplete: %v", m.Kind(), out.Messages)
		}
	}
	if _, err := tg.Step("S", wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(11)}}, t0); err != nil {
		t.Fatal(err)
	}
	out, err := tg.Step("S", wire.Activate{Header: h1, FinalSeq: 11}, t0)
	if err != nil || countEffects[GoLive](out) != 1 || !tg.Live() {
		t.Fatalf("activate: %v %v", err, out.Effects)
	}
	out, err = tg.Step("S", wire.Activate{Header: h1, FinalSeq: 11}, t0)
	if err != nil || countEffects[GoLive](out) != 0 || len(sentKinds(out)[wire.KindActivateAck]) != 2 {
		t.Fatalf("retried activate: %v %v %v", err, out.Effects, out.Messages)
	}
	if _, err := tg.Step("O", wire.Abort{Header: h1, Phase: PhaseCutover, Reason: Cancelled}, t0); !errors.Is(err, ErrPastCutover) {
		t.Fatalf("abort after live: %v", err)
	}
}

func TestTargetHeldEventsAppliedAfterReplay(t *testing.T) {
	tg := restoredTarget(t)
	if _, err := tg.Handle(EventArrived{Sender: 2, Payload: []byte("late")}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Step("S", wire.Activate{Header: h1, FinalSeq: 11}, t0); err != nil {
		t.Fatal(err)
	}
	out, err := tg.Step("S", wire.ReplayBatch{Header: h1, Events: []wire.Event{ev(11)}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range out.Effects {
		if a, ok := e.(ApplyEvent); ok {
			seqs = append(seqs, a.Event.Seq)
		}
	}
	if len(seqs) != 2 || seqs[0] != 11 || seqs[1] != 12 {
		t.Fatalf("applied %v, want replayed 11 then held 12", seqs)
	}
}

func TestTargetFailures(t *testing.T) {
	tg, _ := NewTarget(TargetConfig{Self: "T"})
	tg.Step("S", prepared([]byte("s"), 1), t0)
	tg.Handle(Admission{Attempt: 1, Ready: true, HaveModule: false}, t0)
	tg.Step("S", wire.ModuleDigest{Header: h1, Digest: simDigest}, t0)
	out, err := tg.Handle(ModuleFetched{Attempt: 1, Digest: simDigest, Err: errors.New("no such module")}, t0)
	if derr, _ := findDone(t, out); err != nil || !errors.Is(derr, &Failure{Reason: FactoryNotFound}) {
		t.Fatalf("module fetch failure: %v %v", err, derr)
	}

	tg = restoredTargetUntilRestore(t)
	out, err = tg.Handle(Restored{Attempt: 1, Err: IdentityFailed(errors.New("bad signature"))}, t0)
	derr, _ := findDone(t, out)
	var f *Failure
	if err != nil || !errors.As(derr, &f) || f.Reason != IdentityTransportFailed || f.Retriable() || countEffects[Discard](out) != 1 {
		t.Fatalf("bad envelope: %v %v", err, derr)
	}
	if got := sentKinds(out)[wire.KindAbort]; len(got) != 2 {
		t.Fatalf("abort not sent to source and orchestrator: %v", out.Messages)
	}

	tg, _ = NewTarget(TargetConfig{Self: "T"})
	tg.Step("S", prepared([]byte("s"), 1), t0)
	out, _ = tg.Handle(Admission{Attempt: 1, Ready: false}, t0)
	if got := sentKinds(out)[wire.KindNotReady]; len(got) != 2 {
		t.Fatalf("NotReady not sent to source and orchestrator: %v", out.Messages)
	}
}

func restoredTargetUntilRestore(t *testing.T) *Target {
	t.Helper()
	tg, _ := NewTarget(TargetConfig{Self: "T"})
	tg.Step("S", prepared([]byte("s"), 1), t0)
	tg.Handle(Admission{Attempt: 1, Ready: true, HaveModule: true}, t0)
	out, err := tg.Step("S", Split(h1, simOrigin, 5, []byte("s"), 8)[0], t0)
	if err != nil || countEffects[RestoreSnapshot](out) != 1 {
		t.Fatalf("restore not requested: %v", err)
	}
	return tg
}
