package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The model: one home, publishers that retry until answered, subscribers
// with a Horizon each, and a network that loses, duplicates and reorders
// every message (publish requests, their answers, deliveries and acks).
// Subscribers move between nodes and unsubscribe/resubscribe, and the
// channel is handed to another home (Export/Import), sometimes back to one it
// had before. After a quiet drain, each subscriber must have received, per
// publisher, a strictly increasing run of messages (no duplicate, no
// reordering), and exactly the accepted messages of its final subscription,
// in acceptance order.

type netMsg struct {
	kind   int // 0 publish req, 1 publish answer, 2 deliver, 3 ack
	pub    int
	p      Publication
	answer error
	dup    bool
	d      Deliver
	ack    Ack
}

type modelPub struct {
	id       uint64
	prev     uint64 // last seq the home confirmed
	cur      uint64 // seq of the message being offered
	sent     int    // messages confirmed
	inFlight bool
}

type receipt struct {
	pub, pubSeq     uint64
	stream, chanSeq uint64
}

type modelSub struct {
	origin     uint64
	entity     [32]byte
	node       NodeID
	subscribed bool
	id         uint64 // subscription id in the ledger
	startIdx   int    // len(accepted) at the last new subscribe
	h          Horizon
	got        []receipt
}

func payloadOf(pub, seq uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, pub)
	binary.BigEndian.PutUint64(b[8:], seq)
	return b
}

func TestModel(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	nodes := []NodeID{{1}, {2}, {3}}
	cfg := Config{QueueBound: 1 + rng.IntN(12), Window: 1 + rng.IntN(5), AckTimeout: 50 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryMax: 80 * time.Millisecond}
	homes := map[NodeID]*Machine{}
	for i, n := range nodes {
		homes[n] = New(n, uint64(7+i), cfg, nil)
	}
	m := homes[nodes[0]]
	const name = "orders/eu"
	if err := m.Create(Definition{Name: name}); err != nil {
		t.Fatal(err)
	}
	handoffs := 0
	now := time.Unix(1_000_000, 0)
	var net []netMsg
	send := func(ds []Deliver) {
		for _, d := range ds {
			net = append(net, netMsg{kind: 2, d: d})
		}
	}

	pubs := make([]*modelPub, 1+rng.IntN(3))
	for i := range pubs {
		pubs[i] = &modelPub{id: uint64(100 + i)}
	}
	var accepted []receipt       // in acceptance order
	index := map[[2]uint64]int{} // (stream, seq) -> index in accepted
	subs := make([]*modelSub, 1+rng.IntN(4))
	for i := range subs {
		subs[i] = &modelSub{origin: uint64(1000 + i), entity: [32]byte{byte(i)}, node: nodes[rng.IntN(3)], h: make(Horizon)}
	}
	subscribe := func(s *modelSub) {
		id, out, err := m.Subscribe(name, Subscription{Origin: s.origin, Entity: s.entity, Node: s.node}, now)
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		if s.subscribed && id != s.id {
			t.Fatalf("re-subscribe changed the id from %d to %d", s.id, id)
		}
		s.id = id
		if !s.subscribed {
			s.startIdx = len(accepted)
		}
		s.subscribed = true
		send(out)
	}
	for _, s := range subs {
		subscribe(s)
	}
	const target = 40
	loss := rng.Float64() * 0.3

	handle := func(msg netMsg) {
		switch msg.kind {
		case 0:
			res, out, err := m.Publish(name, msg.p, now)
			send(out)
			if err == nil && res.Outcome == Accepted {
				st, _ := m.Stats(name)
				index[[2]uint64{st.Stream, res.Seq}] = len(accepted)
				accepted = append(accepted, receipt{pub: msg.p.Publisher, pubSeq: msg.p.Seq, stream: st.Stream, chanSeq: res.Seq})
			}
			if err != nil && !errors.Is(err, ErrChannelFull) && !errors.Is(err, ErrOutOfOrder) {
				t.Fatalf("publish: %v", err)
			}
			net = append(net, netMsg{kind: 1, pub: msg.pub, p: msg.p, answer: err, dup: res.Outcome == Duplicate})
		case 1:
			p := pubs[msg.pub]
			if msg.answer == nil && msg.p.Seq == p.cur && p.inFlight {
				p.prev, p.inFlight = p.cur, false
				p.sent++
			}
		case 2:
			var s *modelSub
			for _, c := range subs {
				if c.origin == msg.d.To {
					s = c
				}
			}
			if s.node != msg.d.Node || !s.subscribed {
				// Not hosted there (moved away) or the daemon dropped the
				// subscription: the node reports failure.
				if err := m.DeliveryFailed(name, AckOf(msg.d), now); err != nil && !errors.Is(err, ErrNotSubscribed) {
					t.Fatal(err)
				}
				return
			}
			switch s.h.Accept(msg.d, s.id) {
			case Accept:
				s.got = append(s.got, receipt{
					pub:     binary.BigEndian.Uint64(msg.d.Payload),
					pubSeq:  binary.BigEndian.Uint64(msg.d.Payload[8:]),
					stream:  msg.d.Stream,
					chanSeq: msg.d.Seq,
				})
				net = append(net, netMsg{kind: 3, ack: AckOf(msg.d)})
			case Again:
				net = append(net, netMsg{kind: 3, ack: AckOf(msg.d)})
			case Stale:
			case Gap:
				if rng.IntN(2) == 0 {
					if err := m.DeliveryFailed(name, AckOf(msg.d), now); err != nil && !errors.Is(err, ErrNotSubscribed) {
						t.Fatal(err)
					}
				}
			}
		case 3:
			out, err := m.Delivered(name, msg.ack, now)
			if err != nil && !errors.Is(err, ErrNotSubscribed) {
				t.Fatal(err)
			}
			send(out)
		}
	}

	step := func(chaos bool) {
		now = now.Add(time.Duration(1+rng.IntN(10)) * time.Millisecond)
		switch r := rng.IntN(100); {
		case r < 15:
			p := pubs[rng.IntN(len(pubs))]
			if !p.inFlight && p.sent < target && chaos {
				p.cur = p.prev + 1 + uint64(rng.IntN(3))
				p.inFlight = true
			}
			if p.inFlight {
				net = append(net, netMsg{kind: 0, pub: int(p.id - 100), p: Publication{Publisher: p.id, Seq: p.cur, Prev: p.prev, Payload: payloadOf(p.id, p.cur)}})
			}
		case r < 20:
			send(m.Tick(now))
		case r < 23 && chaos:
			s := subs[rng.IntN(len(subs))]
			nn := nodes[rng.IntN(3)]
			if s.subscribed && nn != s.node {
				s.node = nn
				if rng.IntN(2) == 0 {
					out, err := m.Move(name, s.origin, nn, now)
					if err != nil {
						t.Fatal(err)
					}
					send(out)
				} else {
					subscribe(s) // the target replays its ledger
				}
			}
		case r < 25 && chaos:
			s := subs[rng.IntN(len(subs))]
			if s.subscribed {
				// A stale teardown from another node must not remove it.
				other := nodes[(rng.IntN(2)+1+int(s.node[0]-1))%3]
				if err := m.Unsubscribe(name, s.origin, other); err != nil {
					t.Fatal(err)
				}
				if err := m.Unsubscribe(name, s.origin, s.node); err != nil {
					t.Fatal(err)
				}
				s.subscribed = false
			} else {
				subscribe(s)
			}
		case r < 26 && chaos:
			to := homes[nodes[rng.IntN(3)]]
			if to == m {
				return
			}
			st, err := m.Export(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Remove(name); err != nil {
				t.Fatal(err)
			}
			out, err := to.Import(st, now)
			if err != nil {
				t.Fatal(err)
			}
			// Whatever is in flight to the old home is re-routed (NotHome,
			// then sent to the new one): the model hands it to m.
			m = to
			handoffs++
			send(out)
		case r < 30 && chaos && len(net) > 0:
			i := rng.IntN(len(net))
			net = append(net, net[i])
		default:
			if len(net) == 0 {
				return
			}
			i := rng.IntN(len(net))
			msg := net[i]
			net[i] = net[len(net)-1]
			net = net[:len(net)-1]
			if chaos && rng.Float64() < loss {
				return
			}
			handle(msg)
		}
	}

	for range 3000 {
		step(true)
	}
	for _, s := range subs {
		if !s.subscribed {
			subscribe(s)
		}
	}
	for i := 0; ; i++ {
		if i > 200000 {
			t.Fatalf("no quiescence: %d in net", len(net))
		}
		step(false)
		done := len(net) == 0
		for _, p := range pubs {
			done = done && !p.inFlight
		}
		st, _ := m.Stats(name)
		for _, ss := range st.Subscribers {
			done = done && ss.Queued == 0
		}
		if done {
			break
		}
	}

	for _, s := range subs {
		lastPer := map[uint64]uint64{}
		last := -1
		for _, r := range s.got {
			if r.pubSeq <= lastPer[r.pub] {
				t.Fatalf("sub %d: publisher %d seq %d after %d", s.origin, r.pub, r.pubSeq, lastPer[r.pub])
			}
			lastPer[r.pub] = r.pubSeq
			i, ok := index[[2]uint64{r.stream, r.chanSeq}]
			if !ok || accepted[i] != r {
				t.Fatalf("sub %d: received %+v, never accepted", s.origin, r)
			}
			if i <= last {
				t.Fatalf("sub %d: accepted #%d received after #%d", s.origin, i, last)
			}
			last = i
		}
		want := accepted[s.startIdx:]
		var got []receipt
		for _, r := range s.got {
			if index[[2]uint64{r.stream, r.chanSeq}] >= s.startIdx {
				got = append(got, r)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("sub %d (since #%d): got %v, want %v", s.origin, s.startIdx, got, want)
		}
	}
	st, _ := m.Stats(name)
	t.Logf("accepted %d full %d dup %d delivered %d handoffs %d", len(accepted), st.Full, st.Duplicates, st.Delivered, handoffs)
	if int(st.Published) != len(accepted) {
		t.Fatalf("published %d, accepted %d", st.Published, len(accepted))
	}
	perPub := map[uint64]int{}
	for _, a := range accepted {
		perPub[a.pub]++
	}
	for _, p := range pubs {
		if perPub[p.id] != p.sent {
			t.Fatalf("publisher %d: %d confirmed, %d accepted", p.id, p.sent, perPub[p.id])
		}
	}
}
