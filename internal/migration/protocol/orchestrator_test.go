package protocol

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

var t0 = time.Unix(1000, 0)

func testPlan() wire.Plan {
	return wire.Plan{Origin: simOrigin, KindDigest: simDigest, Source: "S", Target: "T", Orchestrator: "O", TransportIdentity: true}
}

func findDone(t *testing.T, out Output) (error, bool) {
	t.Helper()
	for _, e := range out.Effects {
		if d, ok := e.(Done); ok {
			return d.Err, true
		}
	}
	return nil, false
}

func sentKinds(out Output) map[wire.Kind][]NodeID {
	m := map[wire.Kind][]NodeID{}
	for _, ob := range out.Messages {
		m[ob.Msg.Kind()] = append(m[ob.Msg.Kind()], ob.To)
	}
	return m
}

func TestBackoffSchedule(t *testing.T) {
	var p RetryPolicy
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 16 * time.Second, 16 * time.Second}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w {
			t.Errorf("retry %d: backoff %s, want %s", i+1, got, w)
		}
	}
}

// A target that is never ready: attempts start at 0, 0.5, 1.5, 3.5, 7.5 and
// 15.5 s; the next would start at 31.5 s, past the 30 s budget, so the
// migration ends at 15.5 s with NotReadyTimeout after 6 attempts.
func TestNotReadyRetryUntilBudget(t *testing.T) {
	o, out, err := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan()}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := sentKinds(out)[wire.KindStart]; len(got) != 1 || got[0] != "S" {
		t.Fatalf("first output %v", out.Messages)
	}
	var starts []time.Duration
	starts = append(starts, 0)
	now := t0
	for o.Attempt() < 50 {
		out, err := o.Step("T", wire.NotReady{Header: wire.Header{ID: 1, Attempt: uint32(o.Attempt())}}, now)
		if err != nil {
			t.Fatal(err)
		}
		if ab := sentKinds(out)[wire.KindAbort]; len(ab) != 2 {
			t.Fatalf("NotReady should abort the attempt at both parties, sent %v", out.Messages)
		}
		if err, done := findDone(t, out); done {
			var f *Failure
			if !errors.As(err, &f) || f.Reason != NotReadyTimeout || f.Attempts != 6 || f.Retriable() {
				t.Fatalf("got %v, want NotReadyTimeout after 6 attempts", err)
			}
			if now.Sub(t0) != 15500*time.Millisecond {
				t.Fatalf("gave up at %s", now.Sub(t0))
			}
			break
		}
		if o.Phase() != PhaseSnapshot {
			t.Fatalf("waiting to retry in phase %s, want phase 0 (snapshot)", o.Phase())
		}
		// Tick in 100 ms steps until the next Start goes out.
		for {
			now = now.Add(100 * time.Millisecond)
			if len(sentKinds(o.Tick(now))[wire.KindStart]) > 0 {
				starts = append(starts, now.Sub(t0))
				break
			}
		}
	}
	want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond,
		7500 * time.Millisecond, 15500 * time.Millisecond}
	if len(starts) != len(want) {
		t.Fatalf("attempts started at %v, want %v", starts, want)
	}
	for i := range want {
		if starts[i] != want[i] {
			t.Fatalf("attempts started at %v, want %v", starts, want)
		}
	}
}

func TestNotReadyWithRetryDisabled(t *testing.T) {
	o, _, _ := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan(), Retry: RetryPolicy{Disabled: true}}, t0)
	out, err := o.Step("T", wire.NotReady{Header: wire.Header{ID: 1, Attempt: 1}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	derr, done := findDone(t, out)
	var f *Failure
	if !done || !errors.As(derr, &f) || f.Reason != NotReady || !f.Retriable() {
		t.Fatalf("got done=%v %v, want a retriable NotReady", done, derr)
	}
	if o.Attempt() != 1 {
		t.Fatalf("retried with retry disabled: attempt %d", o.Attempt())
	}
}

// A failure of attempt 1 that arrives late must not end attempt 2 (SPEC R-M9).
func TestStaleFailureDoesNotLeak(t *testing.T) {
	o, _, _ := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan()}, t0)
	if _, err := o.Step("T", wire.NotReady{Header: wire.Header{ID: 1, Attempt: 1}}, t0); err != nil {
		t.Fatal(err)
	}
	o.Tick(t0.Add(time.Second))
	if o.Attempt() != 2 {
		t.Fatalf("attempt %d, want 2", o.Attempt())
	}
	stale := wire.Abort{Header: wire.Header{ID: 1, Attempt: 1}, Phase: PhaseTransfer, Reason: StateFailed, Text: "old"}
	if _, err := o.Step("S", stale, t0.Add(time.Second)); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("stale abort: %v, want ErrStaleAttempt", err)
	}
	if done, err := o.Result(); done || err != nil {
		t.Fatalf("stale failure leaked: done=%v err=%v", done, err)
	}
	// Attempt 2 then completes.
	h := wire.Header{ID: 1, Attempt: 2}
	steps := []struct {
		from NodeID
		m    Message
	}{
		{"T", wire.RestoreComplete{Header: h}},
		{"S", wire.ReplayAck{Header: h}},
		{"T", wire.ActivateAck{Header: h}},
	}
	for _, s := range steps {
		if _, err := o.Step(s.from, s.m, t0.Add(2*time.Second)); err != nil {
			t.Fatalf("%s: %v", s.m.Kind(), err)
		}
	}
	if done, err := o.Result(); !done || err != nil || o.Phase() != PhaseComplete {
		t.Fatalf("attempt 2: done=%v err=%v phase=%s", done, err, o.Phase())
	}
}

func TestOrchestratorRefusesUnexpectedSenders(t *testing.T) {
	h := wire.Header{ID: 1, Attempt: 1}
	cases := []struct {
		from NodeID
		m    Message
	}{
		{"S", wire.NotReady{Header: h}}, // only the target says NotReady
		{"T", wire.Prepare{Header: h}},  // only the source prepares
		{"X", wire.Abort{Header: h, Phase: 1, Reason: Cancelled}},
		{"S", wire.ActivateAck{Header: h}},
		{"T", wire.ReplayAck{Header: h}},
	}
	for _, c := range cases {
		o, _, _ := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan()}, t0)
		_, err := o.Step(c.from, c.m, t0)
		var se *SenderError
		if !errors.Is(err, ErrUnexpectedSender) || !errors.As(err, &se) {
			t.Errorf("%s from %s: got %v", c.m.Kind(), c.from, err)
		}
		if done, _ := o.Result(); done || o.Phase() != PhaseSnapshot {
			t.Errorf("%s from %s changed state", c.m.Kind(), c.from)
		}
	}
}

func TestOrchestratorWrongPhase(t *testing.T) {
	o, _, _ := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan()}, t0)
	_, err := o.Step("T", wire.ActivateAck{Header: wire.Header{ID: 1, Attempt: 1}}, t0)
	if !errors.Is(err, ErrWrongPhase) || o.Phase() != PhaseSnapshot {
		t.Fatalf("ActivateAck before cutover: %v, phase %s", err, o.Phase())
	}
	if _, err := o.Step("T", wire.RestoreComplete{Header: wire.Header{ID: 1, Attempt: 1}}, t0); err != nil {
		t.Fatal(err)
	}
	_, err = o.Step("T", wire.NotReady{Header: wire.Header{ID: 1, Attempt: 1}}, t0)
	if !errors.Is(err, ErrWrongPhase) {
		t.Fatalf("NotReady after restore: %v", err)
	}
	if _, err := o.Step("T", wire.RestoreComplete{Header: wire.Header{ID: 2, Attempt: 1}}, t0); !errors.Is(err, ErrUnknownMigration) {
		t.Fatalf("other migration id: %v", err)
	}
}

func TestCancel(t *testing.T) {
	o, _, _ := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan()}, t0)
	out, err := o.Cancel(t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := sentKinds(out)[wire.KindAbort]; len(got) != 2 {
		t.Fatalf("cancel sent %v", out.Messages)
	}
	if derr, _ := findDone(t, out); !errors.Is(derr, &Failure{Reason: Cancelled}) {
		t.Fatalf("cancel result %v", derr)
	}
	if _, err := o.Cancel(t0); !errors.Is(err, ErrFinished) {
		t.Fatalf("second cancel: %v", err)
	}

	o, _, _ = NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan()}, t0)
	if _, err := o.Step("S", wire.ReplayAck{Header: wire.Header{ID: 1, Attempt: 1}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Cancel(t0); !errors.Is(err, ErrPastCutover) {
		t.Fatalf("cancel after cutover: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	o, _, _ := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan(), Deadline: t0.Add(5 * time.Second)}, t0)
	out := o.Tick(t0.Add(5 * time.Second))
	if derr, _ := findDone(t, out); !errors.Is(derr, &Failure{Reason: Timeout}) {
		t.Fatalf("deadline: %v", derr)
	}
	if len(sentKinds(out)[wire.KindAbort]) != 2 {
		t.Fatalf("deadline before cutover must abort both parties: %v", out.Messages)
	}
}

func TestNewOrchestratorValidates(t *testing.T) {
	p := testPlan()
	p.Target = p.Source
	if _, _, err := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: p}, t0); !errors.Is(err, ErrConfig) {
		t.Fatalf("source == target: %v", err)
	}
}

func TestFailure(t *testing.T) {
	f := &Failure{Reason: NotReadyTimeout, Attempts: 3}
	if f.Retriable() || !(&Failure{Reason: NotReady}).Retriable() {
		t.Fatal("only NotReady is retriable")
	}
	if !errors.Is(f, &Failure{Reason: NotReadyTimeout}) || errors.Is(f, &Failure{Reason: Timeout}) {
		t.Fatal("Is must match by reason")
	}
	if got := AsFailure(errors.New("boom")); got.Reason != StateFailed || got.Text != "boom" {
		t.Fatalf("AsFailure: %+v", got)
	}
	if got := IdentityFailed(errors.New("bad sig")); got.Reason != IdentityTransportFailed || got.Retriable() {
		t.Fatalf("IdentityFailed: %+v", got)
	}
}

// Past cutover an orchestrator that hears nothing more (the ActivateAck
// was lost with a node that crashed) stops waiting after CutoverTimeout:
// it reports Timeout, sends no Abort (nothing can be undone), and keeps
// retransmitting Cutover until then.
func TestOrchestratorGivesUpWaitingPastCutover(t *testing.T) {
	tm := Timing{PeerTimeout: time.Second, CutoverTimeout: 5 * time.Second}
	o, _, err := NewOrchestrator(OrchestratorConfig{ID: 1, Plan: testPlan(), Timing: tm}, t0)
	if err != nil {
		t.Fatal(err)
	}
	h := wire.Header{ID: 1, Attempt: 1}
	for _, s := range []struct {
		from NodeID
		m    Message
	}{{"T", wire.RestoreComplete{Header: h}}, {"S", wire.ReplayAck{Header: h}}} {
		if _, err := o.Step(s.from, s.m, t0); err != nil {
			t.Fatal(err)
		}
	}
	if o.Phase() != PhaseCutover {
		t.Fatalf("phase %s, want cutover", o.Phase())
	}
	cutovers := 0
	for now := t0.Add(100 * time.Millisecond); now.Before(t0.Add(5 * time.Second)); now = now.Add(100 * time.Millisecond) {
		out := o.Tick(now)
		cutovers += len(sentKinds(out)[wire.KindCutover])
		if _, done := findDone(t, out); done {
			t.Fatalf("gave up at %s, before CutoverTimeout", now.Sub(t0))
		}
	}
	if cutovers < 3 {
		t.Fatalf("%d Cutover retransmissions while waiting", cutovers)
	}
	out := o.Tick(t0.Add(5 * time.Second))
	derr, done := findDone(t, out)
	var f *Failure
	if !done || !errors.As(derr, &f) || f.Reason != Timeout {
		t.Fatalf("after CutoverTimeout: done=%v %v, want Timeout", done, derr)
	}
	if ab := sentKinds(out)[wire.KindAbort]; len(ab) != 0 {
		t.Fatalf("an Abort past cutover: %v", out.Messages)
	}
	if d, err := o.Result(); !d || err == nil {
		t.Fatalf("result %v %v", d, err)
	}
}

func TestAsFailureKeepsNilAndReasons(t *testing.T) {
	if f := AsFailure(nil); f != nil {
		t.Fatalf("AsFailure(nil) = %+v, want nil", f)
	}
	want := &Failure{Reason: NotReady, Text: "busy"}
	if f := AsFailure(fmt.Errorf("wrapped: %w", want)); f != want {
		t.Fatalf("a wrapped failure came back as %+v", f)
	}
	if f := AsFailure(errors.New("disk on fire")); f == nil || f.Reason != StateFailed || f.Text != "disk on fire" {
		t.Fatalf("a plain error came back as %+v", f)
	}
}
