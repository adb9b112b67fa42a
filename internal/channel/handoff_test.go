package channel

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestHandoffOverTheWire(t *testing.T) {
	a := New(nodeA, 1, Config{Window: 1}, nil)
	if err := a.Create(Definition{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	id, _, err := a.Subscribe("c", Subscription{Origin: 5, Node: nodeB}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var first Deliver
	for i := uint64(1); i <= 3; i++ {
		_, out, err := a.Publish("c", Publication{Publisher: 1, Seq: i, Prev: i - 1, Payload: []byte{byte(i)}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			first = out[0]
		}
	}
	h := make(Horizon)
	if h.Accept(first, id) != Accept {
		t.Fatal("first delivery refused")
	}
	st, err := a.Export("c")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Remove("c"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Stats("c"); !errors.Is(err, ErrChannelNotFound) {
		t.Fatalf("old home still has it: %v", err)
	}
	b, err := Encode(HandoffMsg{State: st})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	nb := New(nodeB, 1, Config{Window: 8}, nil)
	out, err := nb.Import(msg.(HandoffMsg).State, t0)
	if err != nil {
		t.Fatal(err)
	}
	// The unacked first message comes again under its old stream, so the
	// horizon knows it; the rest follow in order.
	var got []byte
	for _, d := range out {
		if v := h.Accept(d, id); v == Accept {
			got = append(got, d.Payload...)
		} else if v != Again || d.Seq != first.Seq {
			t.Fatalf("after handoff %+v judged %v", d, v)
		}
	}
	if string(got) != "\x02\x03" {
		t.Fatalf("after handoff got %x", got)
	}
	// The publisher retrying its last message is answered Duplicate.
	res, _, err := nb.Publish("c", Publication{Publisher: 1, Seq: 3, Prev: 2}, t0)
	if err != nil || res.Outcome != Duplicate {
		t.Fatalf("retry after handoff: %+v %v", res, err)
	}
	// New messages start the new home's stream once the old one drains.
	nb.Delivered("c", Ack{Origin: 5, Sub: id, Stream: first.Stream, Seq: 3}, t0)
	_, out, err = nb.Publish("c", Publication{Publisher: 1, Seq: 4, Prev: 3}, t0)
	if err != nil || len(out) != 1 || out[0].Stream == first.Stream || out[0].Seq != 1 || out[0].Prev != 0 || h.Accept(out[0], id) != Accept {
		t.Fatalf("first message of the new stream: %+v %v", out, err)
	}
	// Handing it back to A in the same incarnation starts yet another stream.
	st2, _ := nb.Export("c")
	if _, err := a.Import(st2, t0); err != nil {
		t.Fatal(err)
	}
	s1, _ := a.Stats("c")
	if s1.Stream == first.Stream || s1.Stream == out[0].Stream {
		t.Fatal("a channel handed back reused a stream")
	}
}

func TestImportRefuses(t *testing.T) {
	good := func() State {
		return State{Def: Definition{Name: "c"}, LastSub: 2, Subscribers: []SubscriberState{
			{Origin: 1, ID: 1, Queue: []QueuedMessage{{Stream: 9, Seq: 1}, {Stream: 9, Seq: 2, Prev: 1}}},
		}}
	}
	if _, err := New(nodeA, 1, Config{}, nil).Import(good(), t0); err != nil {
		t.Fatalf("good state: %v", err)
	}
	cases := map[string]struct {
		mut  func(*State)
		want error
	}{
		"bad def":      {func(s *State) { s.Def.Name = "C" }, ErrBadName},
		"twice":        {func(s *State) { s.Subscribers = append(s.Subscribers, s.Subscribers[0]) }, ErrBadState},
		"id zero":      {func(s *State) { s.Subscribers[0].ID = 0 }, ErrBadState},
		"id too high":  {func(s *State) { s.Subscribers[0].ID = 3 }, ErrBadState},
		"broken chain": {func(s *State) { s.Subscribers[0].Queue[1].Prev = 0 }, ErrBadState},
		"prev ≥ seq":   {func(s *State) { s.Subscribers[0].Queue[0].Prev = 1 }, ErrBadState},
		"queue bound":  {func(s *State) { s.Subscribers[0].Queue = make([]QueuedMessage, 3) }, ErrLimit},
		"epoch":        {func(s *State) { s.Epoch = ^uint64(0) }, ErrBadState},
	}
	for name, c := range cases {
		st := good()
		c.mut(&st)
		m := New(nodeA, 1, Config{QueueBound: 2}, nil)
		if _, err := m.Import(st, t0); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		if _, err := m.Stats("c"); !errors.Is(err, ErrChannelNotFound) && !errors.Is(err, ErrBadName) {
			t.Errorf("%s: a refused import left the channel: %v", name, err)
		}
	}
	m := New(nodeA, 1, Config{}, nil)
	if err := m.Create(Definition{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Import(good(), t0); !errors.Is(err, ErrChannelExists) {
		t.Fatalf("import over an existing channel: %v", err)
	}
	if err := m.Remove("x"); !errors.Is(err, ErrChannelNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestHandoffWireStrict(t *testing.T) {
	st := State{Def: Definition{Name: "c"}, LastSub: 2, Publishers: map[uint64]uint64{1: 1, 2: 2},
		Subscribers: []SubscriberState{{Origin: 1, ID: 1}, {Origin: 2, ID: 2}}}
	b, err := Encode(HandoffMsg{State: st})
	if err != nil {
		t.Fatal(err)
	}
	// Subscribers with empty queues are the smallest records a count may
	// claim; the exact fit must decode.
	if _, err := Decode(b); err != nil {
		t.Fatalf("minimal subscribers: %v", err)
	}
	// Layout: ver kind | name(2) restricted trusted | 6×8 | pubcount | pubs...
	pubAt := 2 + 2 + 1 + 1 + 48
	swap := func(b []byte, i, j, n int) []byte {
		c := append([]byte(nil), b...)
		tmp := append([]byte(nil), c[i:i+n]...)
		copy(c[i:i+n], c[j:j+n])
		copy(c[j:j+n], tmp)
		return c
	}
	unsortedPubs := swap(b, pubAt+4, pubAt+4+16, 16)
	subAt := pubAt + 4 + 32
	subLen := 8*5 + 32 + 16 + 4
	unsortedSubs := swap(b, subAt+4, subAt+4+subLen, subLen)
	huge := append([]byte(nil), b...)
	binary.BigEndian.PutUint32(huge[subAt:], MaxHandoffSubscribers)
	for name, bad := range map[string][]byte{"unsorted publishers": unsortedPubs, "unsorted subscribers": unsortedSubs, "claims more than it holds": huge} {
		if _, err := Decode(bad); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Encode(HandoffMsg{State: State{Def: Definition{Name: "c"}, Subscribers: []SubscriberState{{Origin: 1}, {Origin: 1}}}}); !errors.Is(err, ErrBadState) {
		t.Fatalf("encode with an origin twice: %v", err)
	}
}
