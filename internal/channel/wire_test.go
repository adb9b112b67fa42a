package channel

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func sampleMessages() []Message {
	tok := []byte("token-bytes")
	return []Message{
		CreateMsg{Def: Definition{Name: "orders/eu"}},
		CreateMsg{Def: Definition{Name: "r", Restricted: true, Trusted: [][32]byte{{1}, {2}}}},
		SubscribeMsg{Channel: "orders/eu", Sub: Subscription{Origin: 42, Entity: [32]byte{3}, Node: nodeB, Token: tok}},
		SubscribeMsg{Channel: "c", Sub: Subscription{Origin: 1}},
		UnsubscribeMsg{Channel: "c", Origin: 7, From: nodeA},
		MoveMsg{Channel: "c", Origin: 7, Node: nodeB},
		PublishMsg{Channel: "c", Pub: Publication{Publisher: 9, Seq: 11, Prev: 10, Subject: [32]byte{4}, Token: tok, Payload: []byte("hello")}},
		DeliverMsg{D: Deliver{Channel: "c", To: 7, Node: nodeB, Stream: 1 << 60, Seq: 5, Prev: 4, Sub: 3, Payload: []byte{0, 1}}},
		AckMsg{Channel: "c", Ack: Ack{Origin: 7, Sub: 2, Stream: 3, Seq: 5}},
		NackMsg{Channel: "c", Ack: Ack{Origin: 7, Sub: 2, Stream: 3, Seq: 5}},
		AnswerMsg{Code: CodeOK, Outcome: Accepted, Seq: 12},
		AnswerMsg{Code: CodeFull, Detail: "subscriber 7 has 1024 queued"},
		HandoffMsg{State: State{Def: Definition{Name: "c"}}},
		HandoffMsg{State: State{
			Def: Definition{Name: "r", Restricted: true, Trusted: [][32]byte{{5}}}, Epoch: 2, LastSub: 3,
			Publishers: map[uint64]uint64{1: 10, 9: 3},
			Subscribers: []SubscriberState{
				{Origin: 4, ID: 1, Entity: [32]byte{1}, Node: nodeA, LastStream: 8, LastSeq: 6, Delivered: 2,
					Queue: []QueuedMessage{{Stream: 7, Seq: 9, Prev: 8, Payload: []byte("x")}, {Stream: 8, Seq: 6}}},
				{Origin: 5, ID: 3},
			},
			Counters: Counters{Published: 1, Delivered: 2, Duplicates: 3, Full: 4},
		}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	kinds := map[Kind]bool{}
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: %+v, want %+v", got, m)
		}
		kinds[m.Kind()] = true
		for i := range len(b) {
			if _, err := Decode(b[:i]); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("%T truncated to %d: %v", m, i, err)
			}
		}
		if _, err := Decode(append(bytes.Clone(b), 0)); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("%T with a trailing byte: %v", m, err)
		}
		bad := bytes.Clone(b)
		bad[0] = WireVersion + 1
		if _, err := Decode(bad); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("%T with another version: %v", m, err)
		}
	}
	if len(kinds) != int(KindHandoff) {
		t.Fatalf("samples cover %d of %d kinds", len(kinds), KindHandoff)
	}
}

func TestWireStrict(t *testing.T) {
	enc := func(m Message) []byte {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	create := enc(CreateMsg{Def: Definition{Name: "c"}})
	cases := map[string][]byte{
		"unknown kind": {WireVersion, 200},
		"zero kind":    {WireVersion, 0},
		"bool byte 2":  append(create[:len(create)-2:len(create)-2], 2, 0),
		"bad name":     {WireVersion, byte(KindMove), 1, 'A'},
		"open with keys": func() []byte {
			b := bytes.Clone(create)
			b[len(b)-1] = 1
			return append(b, make([]byte, 32)...)
		}(),
		"answer code": {WireVersion, byte(KindAnswer), byte(codeEnd), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"huge token": func() []byte {
			b := enc(SubscribeMsg{Channel: "c"})
			b = b[:len(b)-4]
			return append(b, 0xff, 0xff, 0xff, 0xff)
		}(),
		"deliver prev not below seq": func() []byte {
			b := enc(DeliverMsg{D: Deliver{Channel: "c", Seq: 2, Prev: 1}})
			// Prev is the 8 bytes before Sub and the 4-byte payload length.
			b[len(b)-13] = 2
			return b
		}(),
	}
	for name, b := range cases {
		if m, err := Decode(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: Decode = %+v, %v; want ErrBadMessage", name, m, err)
		}
	}
	refuse := map[string]Message{
		"bad name":    MoveMsg{Channel: "A"},
		"big payload": PublishMsg{Channel: "c", Pub: Publication{Payload: make([]byte, MaxPayloadLen+1)}},
		"big token":   SubscribeMsg{Channel: "c", Sub: Subscription{Token: make([]byte, MaxTokenLen+1)}},
		"bad def":     CreateMsg{Def: Definition{Name: "c", Restricted: true}},
		"bad code":    AnswerMsg{Code: codeEnd},
		"prev ≥ seq":  DeliverMsg{D: Deliver{Channel: "c", Seq: 1, Prev: 1}},
		"long detail": AnswerMsg{Code: CodeOther, Detail: strings.Repeat("x", MaxDetailLen+1)},
	}
	for name, m := range refuse {
		if _, err := Encode(m); err == nil {
			t.Errorf("%s: Encode accepted %T", name, m)
		}
	}
}

func TestAnswerErrors(t *testing.T) {
	for c := CodeOK + 1; c < codeEnd; c++ {
		e := codeErr(c)
		if e == nil {
			continue
		}
		a := AnswerFor(PublishResult{}, fmt.Errorf("context: %w", e))
		if a.Code != c {
			t.Fatalf("%v answered code %d, want %d", e, a.Code, c)
		}
		b, err := Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := back.(AnswerMsg).Err(); !errors.Is(got, e) || !strings.Contains(got.Error(), "context") {
			t.Fatalf("code %d came back as %v", c, got)
		}
	}
	if a := AnswerFor(PublishResult{Outcome: Duplicate}, nil); a.Err() != nil || a.Result().Outcome != Duplicate {
		t.Fatalf("success answer %+v", a)
	}
	if a := AnswerFor(PublishResult{}, errors.New(strings.Repeat("y", 5000))); a.Code != CodeOther || len(a.Detail) != MaxDetailLen {
		t.Fatalf("unknown error answer: code %d, %d bytes of detail", a.Code, len(a.Detail))
	}
	// Wrapped permission errors keep the authorizer's cause out of the code
	// but in the detail.
	_, err := Decode([]byte{9, 9})
	if a := AnswerFor(PublishResult{}, err); a.Code != CodeBadMessage {
		t.Fatalf("bad message answered %d", a.Code)
	}
}
