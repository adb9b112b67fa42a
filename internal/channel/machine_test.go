package channel

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Unix(1_700_000_000, 0)
	nodeA = NodeID{0xa}
	nodeB = NodeID{0xb}
)

func TestValidName(t *testing.T) {
	good := []string{"orders", "orders/eu", "a.b_c-d/0/9", strings.Repeat("a", 255), "x/.y", "..a"}
	for _, n := range good {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	bad := []string{"", "/", "a/", "/a", "a//b", "Orders", "a b", "a/./b", "..", "a/..", strings.Repeat("a", 256), "é", "a\x00", "a*"}
	for _, n := range bad {
		if err := ValidName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want ErrBadName", n, err)
		}
	}
}

func TestHomeRendezvous(t *testing.T) {
	members := make([]NodeID, 8)
	for i := range members {
		members[i] = NodeID{byte(i + 1), 0x55}
	}
	names := make([]string, 2000)
	for i := range names {
		names[i] = fmt.Sprintf("orders/%d", i)
	}
	before := map[string]NodeID{}
	perNode := map[NodeID]int{}
	for _, n := range names {
		h := Home(n, members)
		before[n] = h
		perNode[h]++
		rev := append([]NodeID(nil), members...)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		if Home(n, rev) != h {
			t.Fatalf("%s: home depends on member order", n)
		}
	}
	for _, m := range members {
		if perNode[m] == 0 {
			t.Fatalf("member %v homes nothing: %v", m, perNode)
		}
	}
	leaving := members[3]
	rest := append(append([]NodeID(nil), members[:3]...), members[4:]...)
	moved := 0
	for _, n := range names {
		after := Home(n, rest)
		if before[n] != leaving && after != before[n] {
			t.Fatalf("%s moved from %v to %v though its home stayed", n, before[n], after)
		}
		if before[n] == leaving {
			if after == leaving {
				t.Fatalf("%s still homed on the leaver", n)
			}
			moved++
		}
	}
	if moved != perNode[leaving] {
		t.Fatalf("moved %d, leaver homed %d", moved, perNode[leaving])
	}
	if !Home("x", nil).IsZero() {
		t.Fatal("no members must give the zero id")
	}
}

func TestStreamIDChangesWithHome(t *testing.T) {
	a := StreamID("c", nodeA, 1, 0)
	if a == StreamID("c", nodeA, 2, 0) || a == StreamID("c", nodeA, 1, 1) || a == StreamID("c", nodeB, 1, 0) || a == StreamID("d", nodeA, 1, 0) {
		t.Fatal("stream ids collide across home, incarnation or name")
	}
	if a != StreamID("c", nodeA, 1, 0) {
		t.Fatal("stream id not deterministic")
	}
}

func TestCreate(t *testing.T) {
	m := New(nodeA, 1, Config{}, nil)
	k1, k2 := [32]byte{1}, [32]byte{2}
	def := Definition{Name: "r", Restricted: true, Trusted: [][32]byte{k1, k2}}
	if err := m.Create(def); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(Definition{Name: "r", Restricted: true, Trusted: [][32]byte{k2, k1}}); err != nil {
		t.Fatalf("identical re-create: %v", err)
	}
	for _, d := range []Definition{{Name: "r"}, {Name: "r", Restricted: true, Trusted: [][32]byte{k1}}} {
		if err := m.Create(d); !errors.Is(err, ErrChannelExists) {
			t.Fatalf("Create(%+v) = %v, want ErrChannelExists", d, err)
		}
	}
	if err := m.Create(Definition{Name: "Bad"}); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if err := m.Create(Definition{Name: "o", Trusted: [][32]byte{k1}}); !errors.Is(err, ErrBadDef) {
		t.Fatalf("open with keys: %v", err)
	}
	if err := m.Create(Definition{Name: "o", Restricted: true}); !errors.Is(err, ErrBadDef) {
		t.Fatalf("restricted without keys: %v", err)
	}
	// The machine keeps its own copy of the keys.
	def.Trusted[0] = [32]byte{9}
	st, err := m.Stats("r")
	if err != nil || st.Definition.Trusted[0] != k1 {
		t.Fatalf("definition aliased the caller's slice: %v %v", st.Definition.Trusted, err)
	}
	small := New(nodeA, 1, Config{MaxChannels: 1}, nil)
	if err := small.Create(Definition{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := small.Create(Definition{Name: "b"}); !errors.Is(err, ErrLimit) {
		t.Fatalf("over MaxChannels: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	m := New(nodeA, 1, Config{}, nil)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrChannelNotFound) {
			t.Errorf("%s: %v, want ErrChannelNotFound", what, err)
		}
	}
	_, _, err := m.Subscribe("nope", Subscription{Origin: 1}, t0)
	check("subscribe", err)
	_, _, err = m.Publish("nope", Publication{Publisher: 1, Seq: 1}, t0)
	check("publish", err)
	check("unsubscribe", m.Unsubscribe("nope", 1, NodeID{}))
	_, err = m.Move("nope", 1, nodeB, t0)
	check("move", err)
	_, err = m.Delivered("nope", Ack{Origin: 1, Sub: 1, Stream: 1, Seq: 1}, t0)
	check("delivered", err)
	check("failed", m.DeliveryFailed("nope", Ack{Origin: 1, Sub: 1, Stream: 1, Seq: 1}, t0))
	_, err = m.Stats("nope")
	check("stats", err)
	if _, err := m.Stats("Bad Name"); !errors.Is(err, ErrBadName) {
		t.Errorf("stats of a bad name: %v", err)
	}
}

var errNoToken = errors.New("no token")

func TestRestricted(t *testing.T) {
	allowed := [32]byte{7}
	var calls []Scope
	auth := AuthorizerFunc(func(def Definition, subject [32]byte, scope Scope, token []byte, now time.Time) error {
		calls = append(calls, scope)
		if def.Name != "r" || !now.Equal(t0) {
			return fmt.Errorf("wrong def or time: %v %v", def.Name, now)
		}
		if subject != allowed || string(token) != "ok" {
			return errNoToken
		}
		return nil
	})
	m := New(nodeA, 1, Config{}, auth)
	if err := m.Create(Definition{Name: "r", Restricted: true, Trusted: [][32]byte{{1}}}); err != nil {
		t.Fatal(err)
	}
	_, _, err := m.Subscribe("r", Subscription{Origin: 1, Entity: [32]byte{8}, Node: nodeB, Token: []byte("ok")}, t0)
	if !errors.Is(err, ErrNotPermitted) || !errors.Is(err, errNoToken) {
		t.Fatalf("subscribe by the wrong entity: %v", err)
	}
	if _, _, err := m.Subscribe("r", Subscription{Origin: 1, Entity: allowed, Node: nodeB, Token: []byte("ok")}, t0); err != nil {
		t.Fatal(err)
	}
	_, _, err = m.Publish("r", Publication{Publisher: 5, Seq: 1, Subject: allowed, Token: []byte("bad")}, t0)
	if !errors.Is(err, ErrNotPermitted) || !errors.Is(err, errNoToken) {
		t.Fatalf("publish with a bad token: %v", err)
	}
	if _, _, err := m.Publish("r", Publication{Publisher: 5, Seq: 1, Subject: allowed, Token: []byte("ok")}, t0); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(calls) != "[subscribe subscribe publish publish]" {
		t.Fatalf("authorizer calls %v", calls)
	}
	// Another daemon may not take over a subscribed origin.
	if _, _, err := m.Subscribe("r", Subscription{Origin: 1, Entity: [32]byte{9}, Node: nodeA}, t0); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("takeover: %v", err)
	}
	noAuth := New(nodeA, 1, Config{}, nil)
	if err := noAuth.Create(Definition{Name: "r", Restricted: true, Trusted: [][32]byte{{1}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := noAuth.Subscribe("r", Subscription{Origin: 1}, t0); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("restricted without an authorizer: %v", err)
	}
}

func TestPublishDeliverAck(t *testing.T) {
	m := New(nodeA, 3, Config{Window: 2}, nil)
	if err := m.Create(Definition{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Subscribe("c", Subscription{Origin: 10, Node: nodeB}, t0); err != nil {
		t.Fatal(err)
	}
	stream := StreamID("c", nodeA, 3, 0)
	var sent []Deliver
	for i := uint64(1); i <= 3; i++ {
		buf := []byte{byte(i)}
		res, out, err := m.Publish("c", Publication{Publisher: 1, Seq: i * 10, Prev: (i - 1) * 10, Payload: buf}, t0)
		if err != nil || res.Outcome != Accepted || res.Seq != i {
			t.Fatalf("publish %d: %+v %v", i, res, err)
		}
		buf[0] = 0xff // the machine must have copied it
		sent = append(sent, out...)
	}
	if len(sent) != 2 {
		t.Fatalf("window 2 sent %d", len(sent))
	}
	want0 := Deliver{Channel: "c", To: 10, Node: nodeB, Stream: stream, Seq: 1, Prev: 0, Sub: 1, Payload: []byte{1}}
	if fmt.Sprint(sent[0]) != fmt.Sprint(want0) || sent[1].Seq != 2 || sent[1].Prev != 1 {
		t.Fatalf("deliveries %+v", sent)
	}
	res, out, err := m.Publish("c", Publication{Publisher: 1, Seq: 20, Prev: 10}, t0)
	if err != nil || res.Outcome != Duplicate || len(out) != 0 {
		t.Fatalf("re-publish: %+v %v %v", res, out, err)
	}
	if _, _, err := m.Publish("c", Publication{Publisher: 1, Seq: 50, Prev: 40}, t0); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap in publisher chain: %v", err)
	}
	// An ack naming another subscription of the origin is stale.
	if out, err := m.Delivered("c", Ack{Origin: 10, Sub: 2, Stream: stream, Seq: 2}, t0); err != nil || len(out) != 0 {
		t.Fatalf("stale ack: %+v %v", out, err)
	}
	if st, _ := m.Stats("c"); st.Subscribers[0].Queued != 3 {
		t.Fatalf("a stale ack removed entries: %+v", st.Subscribers)
	}
	out, err = m.Delivered("c", Ack{Origin: 10, Sub: 1, Stream: stream, Seq: 2}, t0)
	if err != nil || len(out) != 1 || out[0].Seq != 3 || out[0].Prev != 2 || out[0].Payload[0] != 3 {
		t.Fatalf("after cumulative ack: %+v %v", out, err)
	}
	st, _ := m.Stats("c")
	if st.Published != 3 || st.Delivered != 2 || st.Duplicates != 1 || st.Subscribers[0].Queued != 1 || st.Subscribers[0].InFlight != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := m.Delivered("c", Ack{Origin: 99, Sub: 1, Stream: stream, Seq: 2}, t0); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("ack from a stranger: %v", err)
	}
	if _, _, err := m.Publish("c", Publication{Publisher: 2, Seq: 1, Payload: make([]byte, DefaultConfig().MaxPayload+1)}, t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestFullRefusesWhole(t *testing.T) {
	m := New(nodeA, 1, Config{QueueBound: 2, Window: 1}, nil)
	if err := m.Create(Definition{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []uint64{1, 2} {
		if _, _, err := m.Subscribe("c", Subscription{Origin: o, Node: nodeB}, t0); err != nil {
			t.Fatal(err)
		}
	}
	stream := StreamID("c", nodeA, 1, 0)
	for i := uint64(1); i <= 2; i++ {
		if _, _, err := m.Publish("c", Publication{Publisher: 1, Seq: i, Prev: i - 1}, t0); err != nil {
			t.Fatal(err)
		}
	}
	// Subscriber 1 keeps up; 2 does not: the channel is full for everyone.
	if _, err := m.Delivered("c", Ack{Origin: 1, Sub: 1, Stream: stream, Seq: 2}, t0); err != nil {
		t.Fatal(err)
	}
	_, _, err := m.Publish("c", Publication{Publisher: 1, Seq: 3, Prev: 2}, t0)
	if !errors.Is(err, ErrChannelFull) {
		t.Fatalf("over the bound: %v", err)
	}
	st, _ := m.Stats("c")
	if st.Full != 1 || st.Seq != 2 || st.Subscribers[0].Queued != 0 || st.Subscribers[1].Queued != 2 {
		t.Fatalf("a refused publish changed state: %+v", st)
	}
	if _, err := m.Delivered("c", Ack{Origin: 2, Sub: 2, Stream: stream, Seq: 1}, t0); err != nil {
		t.Fatal(err)
	}
	// The same seq is accepted once there is room: it was not recorded.
	res, _, err := m.Publish("c", Publication{Publisher: 1, Seq: 3, Prev: 2}, t0)
	if err != nil || res.Outcome != Accepted || res.Seq != 3 {
		t.Fatalf("retry after room: %+v %v", res, err)
	}
}

func TestRetryMoveUnsubscribe(t *testing.T) {
	cfg := Config{Window: 4, AckTimeout: time.Second, RetryBase: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond}
	m := New(nodeA, 1, cfg, nil)
	if err := m.Create(Definition{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Subscribe("c", Subscription{Origin: 1, Node: nodeA}, t0); err != nil {
		t.Fatal(err)
	}
	stream := StreamID("c", nodeA, 1, 0)
	if _, _, err := m.Publish("c", Publication{Publisher: 1, Seq: 1}, t0); err != nil {
		t.Fatal(err)
	}
	if out := m.Tick(t0.Add(999 * time.Millisecond)); len(out) != 0 {
		t.Fatalf("resent before the ack timeout: %+v", out)
	}
	if out := m.Tick(t0.Add(time.Second)); len(out) != 1 || out[0].Seq != 1 {
		t.Fatalf("ack timeout did not resend: %+v", out)
	}
	// The timeout was attempt 1; failures then back off 200, 400, 400ms.
	at := t0.Add(time.Second)
	for i, wait := range []time.Duration{200, 400, 400} {
		if err := m.DeliveryFailed("c", Ack{Origin: 1, Sub: 1, Stream: stream, Seq: 1}, at); err != nil {
			t.Fatal(err)
		}
		if out := m.Tick(at.Add(wait*time.Millisecond - 1)); len(out) != 0 {
			t.Fatalf("failure %d: resent before %dms", i+1, wait)
		}
		at = at.Add(wait * time.Millisecond)
		if out := m.Tick(at); len(out) != 1 {
			t.Fatalf("failure %d: not resent after %dms", i+1, wait)
		}
	}
	out, err := m.Move("c", 1, nodeB, at)
	if err != nil || len(out) != 1 || out[0].Node != nodeB {
		t.Fatalf("move: %+v %v", out, err)
	}
	if out, err := m.Move("c", 1, nodeB, at); err != nil || len(out) != 0 {
		t.Fatalf("move to where it is: %+v %v", out, err)
	}
	if _, err := m.Move("c", 2, nodeB, at); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("move a stranger: %v", err)
	}
	if err := m.Unsubscribe("c", 1, nodeA); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Stats("c"); len(st.Subscribers) != 1 {
		t.Fatal("a stale unsubscribe from the old node removed the subscriber")
	}
	if err := m.Unsubscribe("c", 1, NodeID{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Unsubscribe("c", 1, NodeID{}); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("second unsubscribe: %v", err)
	}
	if st, _ := m.Stats("c"); len(st.Subscribers) != 0 {
		t.Fatal("unsubscribe left the subscriber")
	}
}

func TestHorizon(t *testing.T) {
	h := make(Horizon)
	d := func(stream, seq, prev uint64) Deliver { return Deliver{Stream: stream, Seq: seq, Prev: prev, Sub: 4} }
	steps := []struct {
		d    Deliver
		want Verdict
	}{
		{d(1, 5, 3), Gap},
		{d(1, 3, 0), Accept},
		{d(1, 3, 0), Again},
		{d(1, 7, 5), Gap},
		{d(1, 5, 3), Accept},
		{d(2, 1, 0), Accept}, // a new stream starts over
		{d(1, 4, 3), Again},
		{d(1, 9, 0), Accept}, // a resubscription's first delivery
		{Deliver{Stream: 1, Seq: 10, Prev: 9, Sub: 3}, Stale},
	}
	for i, s := range steps {
		if got := h.Accept(s.d, 4); got != s.want {
			t.Fatalf("step %d %+v: %v, want %v", i, s.d, got, s.want)
		}
	}
	if h[1] != 9 || h[2] != 1 {
		t.Fatalf("horizon %v", h)
	}
}

// A node checks Judge against the horizon it reads, then hands the event to
// the engine, whose horizon may have grown meanwhile. That is safe only if a
// delivery judged Accept at some horizon is never a Gap at a later one.
func TestJudgeMonotone(t *testing.T) {
	for seq := uint64(1); seq < 12; seq++ {
		for prev := uint64(0); prev < seq; prev++ {
			d := Deliver{Seq: seq, Prev: prev, Sub: 1}
			for last := uint64(0); last < 14; last++ {
				if Judge(d, last, 1) != Accept {
					continue
				}
				for later := last; later < 14; later++ {
					if v := Judge(d, later, 1); v == Gap || v == Stale {
						t.Fatalf("%+v: accept at %d, %v at %d", d, last, v, later)
					}
				}
			}
		}
	}
	if Judge(Deliver{Seq: 2, Prev: 1, Sub: 1}, 1, 2) != Stale {
		t.Fatal("another subscription's delivery was not stale")
	}
}
