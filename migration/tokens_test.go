package migration

import (
	"encoding/binary"
	"fmt"
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
