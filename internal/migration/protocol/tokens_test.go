package protocol

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// tokenBook follows, in the simulated mesh, the opaque tokens the I/O layer
// hands in with EventArrived: a token the machine accepted comes back on
// the effect that disposes of its event, carrying that same event, at most
// once per kind of return, and at the end every accepted token is
// accounted for (handed back, replayed on the target under its input
// sequence, or dropped with an aborted target that kept no copy).
type tokenBook struct {
	next     Token
	issued   map[Token]tokenEntry
	accepted map[Token]bool
	returned map[Token]map[string]int
	replayed map[Token]bool
	// discarded: target tokens whose attempt ended in Discard.
	discarded map[Token]bool
}

type tokenEntry struct {
	role Role
	id   uint64
}

func newTokenBook() *tokenBook {
	return &tokenBook{issued: map[Token]tokenEntry{}, accepted: map[Token]bool{}, returned: map[Token]map[string]int{},
		replayed: map[Token]bool{}, discarded: map[Token]bool{}}
}

func (b *tokenBook) issue(r Role, id uint64) Token {
	b.next++
	b.issued[b.next] = tokenEntry{role: r, id: id}
	return b.next
}

// settle records whether the machine took the event (an error means it
// did not, and the token must never come back).
func (b *tokenBook) settle(tok Token, err error) {
	if err == nil {
		b.accepted[tok] = true
	}
}

func eventID(ev Event) uint64 { return binary.LittleEndian.Uint64(ev.Payload) }

// back checks one token handed back by role r on an effect of kind with ev.
func (b *tokenBook) back(m *sim, r Role, kind string, tok Token, ev Event) {
	if tok == 0 {
		m.violate("%s %s of event %d without its token", r, kind, eventID(ev))
		return
	}
	e, ok := b.issued[tok]
	switch {
	case !ok || !b.accepted[tok]:
		m.violate("%s %s returned token %d it never accepted", r, kind, tok)
		return
	case e.role != r:
		m.violate("%s %s returned token %d given to the %s", r, kind, tok, e.role)
	case e.id != eventID(ev):
		m.violate("%s %s paired token %d (event %d) with event %d", r, kind, tok, e.id, eventID(ev))
	}
	if b.returned[tok] == nil {
		b.returned[tok] = map[string]int{}
	}
	b.returned[tok][kind]++
	if n := b.returned[tok][kind]; n > 1 {
		m.violate("%s returned token %d on %s %d times", r, tok, kind, n)
	}
}

// replay checks a replayed event applied on the target: the source names
// the token of the event it numbered seq, and that is this event.
func (b *tokenBook) replay(m *sim, ev Event) {
	tok, ok := m.src.ReplayedToken(ev.Seq)
	if !ok {
		return // the source already aborted and handed its tokens back
	}
	if e := b.issued[tok]; e.role != RoleSource || e.id != eventID(ev) {
		m.violate("replayed seq %d is event %d, but the source's token %d is event %d", ev.Seq, eventID(ev), tok, e.id)
	}
	b.replayed[tok] = true
}

// discard marks every target token not yet applied as dropped.
func (b *tokenBook) discard() {
	for tok := range b.accepted {
		if e := b.issued[tok]; e.role == RoleTarget && b.returned[tok]["apply"] == 0 {
			b.discarded[tok] = true
		}
	}
}

// finalCheck: every accepted token is accounted for.
func (b *tokenBook) finalCheck(m *sim) {
	srcHandedOver := m.src.handedOver
	if srcHandedOver {
		// After the handover the source still names every replayed token.
		for seq := uint64(1); seq <= 2*m.nextEvent+1; seq++ {
			if tok, ok := m.src.ReplayedToken(seq); ok {
				b.replayed[tok] = true
			}
		}
	}
	for tok := range b.accepted {
		e, got := b.issued[tok], b.returned[tok]
		switch e.role {
		case RoleSource:
			if got["forward"] > 0 || got["resume"] > 0 || (srcHandedOver && b.replayed[tok]) {
				continue
			}
			if m.crashLive || !m.src.done {
				continue
			}
			m.violate("source token %d (event %d) never came back (%v, handed over %v)", tok, e.id, got, srcHandedOver)
		case RoleTarget:
			if got["apply"] > 0 || b.discarded[tok] || m.tgtCrashed {
				continue
			}
			m.violate("target token %d (event %d) never came back (%v)", tok, e.id, got)
		}
	}
}

func (b *tokenBook) String() string {
	return fmt.Sprintf("%d tokens issued, %d accepted, %d replayed", len(b.issued), len(b.accepted), len(b.replayed))
}

// TestSourceTokensComeBack: events handed in with tokens before and after
// the snapshot come back on ResumeLocal in the machine's order with their
// own tokens, and once handed over the source still names each replayed
// event's token by its input sequence.
func TestSourceTokensComeBack(t *testing.T) {
	arrive := func(s *Source, tok Token) {
		t.Helper()
		if _, err := s.Handle(EventArrived{Sender: 1, SenderSeq: uint64(tok), Payload: []byte{byte(tok)}, Token: tok}, t0); err != nil {
			t.Fatal(err)
		}
	}
	taken := SnapshotTaken{Attempt: 1, Snapshot: []byte("x"), SnapshotSeq: 5, InputSeq: 10, Envelope: []byte("e")}

	s := startedSource(t)
	arrive(s, 7) // before the snapshot: unnumbered, numbered 11 by it
	if _, err := s.Handle(taken, t0); err != nil {
		t.Fatal(err)
	}
	arrive(s, 3) // 12
	if tok, ok := s.ReplayedToken(12); !ok || tok != 3 {
		t.Fatalf("seq 12 names token %d %v, want 3", tok, ok)
	}
	out, err := s.Step("O", wire.Abort{Header: h1, Phase: PhaseTransfer, Reason: Cancelled}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var rl ResumeLocal
	for _, e := range out.Effects {
		if r, ok := e.(ResumeLocal); ok {
			rl = r
		}
	}
	if len(rl.Events) != 2 || len(rl.Tokens) != 2 || rl.Tokens[0] != 7 || rl.Tokens[1] != 3 ||
		rl.Events[0].Payload[0] != 7 || rl.Events[1].Payload[0] != 3 {
		t.Fatalf("resume = %+v", rl)
	}
	if _, ok := s.ReplayedToken(11); ok {
		t.Fatal("an aborted source still names a token it handed back")
	}

	s = startedSource(t)
	if _, err := s.Handle(taken, t0); err != nil {
		t.Fatal(err)
	}
	arrive(s, 5) // 11
	for _, step := range []struct {
		from NodeID
		m    Message
	}{
		{"T", wire.RestoreComplete{Header: h1, RestoredInputSeq: 10}},
		{"T", wire.ReplayAck{Header: h1, UpTo: 11}},
		{"O", wire.Cutover{Header: h1}},
	} {
		if _, err := s.Step(step.from, step.m, t0); err != nil {
			t.Fatal(err)
		}
	}
	out, err = s.Handle(EventArrived{Sender: 1, SenderSeq: 9, Payload: []byte{9}, Token: 9}, t0)
	if err != nil || len(out.Effects) != 1 || out.Effects[0].(ForwardEvent).Token != 9 {
		t.Fatalf("late event after the flip: %v %+v", err, out.Effects)
	}
	if _, err := s.Step("T", wire.ActivateAck{Header: h1, AppliedSeq: 11}, t0); err != nil {
		t.Fatal(err)
	}
	if done, err := s.Result(); !done || err != nil {
		t.Fatalf("not handed over: %v %v", done, err)
	}
	if tok, ok := s.ReplayedToken(11); !ok || tok != 5 {
		t.Fatalf("after the handover seq 11 names token %d %v, want 5", tok, ok)
	}
	if _, ok := s.ReplayedToken(12); ok {
		t.Fatal("a forwarded event has no input sequence here")
	}
}
