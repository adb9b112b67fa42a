package channel

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestMirrorFollowsTheHome: a replica seeded with Export+Seq at any point
// and fed the home's successful inputs from then on holds exactly the
// home's state, so it can take over (Export, Import) with nothing lost.
func TestMirrorFollowsTheHome(t *testing.T) {
	self := NodeID{1}
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		home := New(self, 9, Config{QueueBound: 8}, nil)
		replica := New(self, 9, Config{QueueBound: 1 << 20}, nil)
		now := time.Unix(1000, 0)
		if err := home.Create(Definition{Name: "c"}); err != nil {
			t.Fatal(err)
		}
		type input func(m *Machine) error
		var log []input
		seedAt := rng.IntN(40)
		seq := map[uint64]uint64{}
		for step := range 80 {
			if step == seedAt {
				st, err := home.Export("c")
				if err != nil {
					t.Fatal(err)
				}
				s, _ := home.Seq("c")
				if err := replica.Mirror(st, s); err != nil {
					t.Fatalf("seed %d: mirror: %v", seed, err)
				}
				log = nil
			}
			var in input
			switch k := rng.IntN(10); {
			case k < 2:
				o := uint64(rng.IntN(4) + 1)
				in = func(m *Machine) error {
					_, _, err := m.Subscribe("c", Subscription{Origin: o, Node: NodeID{byte(o)}}, now)
					return err
				}
			case k < 3:
				o := uint64(rng.IntN(4) + 1)
				in = func(m *Machine) error { _, err := m.Move("c", o, NodeID{byte(o + 10)}, now); return err }
			case k < 4:
				o := uint64(rng.IntN(4) + 1)
				in = func(m *Machine) error { return m.Unsubscribe("c", o, NodeID{}) }
			case k < 8:
				p := uint64(rng.IntN(2) + 1)
				s := seq[p] + 1
				in = func(m *Machine) error {
					_, _, err := m.Publish("c", Publication{Publisher: p, Seq: s, Prev: s - 1, Payload: []byte(fmt.Sprint(s))}, now)
					return err
				}
				seq[p] = s
			default:
				st, _ := home.Stats("c")
				if len(st.Subscribers) == 0 {
					continue
				}
				sub := st.Subscribers[rng.IntN(len(st.Subscribers))]
				ack := Ack{Origin: sub.Origin, Sub: sub.ID, Stream: st.Stream, Seq: st.Seq}
				in = func(m *Machine) error { _, err := m.Delivered("c", ack, now); return err }
			}
			if err := in(home); err == nil {
				log = append(log, in)
			} else {
				// A refused publish is not retried here: its seq is free again.
				for k := range seq {
					seq[k] = home.chans["c"].pubs[k]
				}
			}
		}
		if seedAt >= 80 {
			continue
		}
		for _, in := range log {
			if err := in(replica); err != nil {
				t.Fatalf("seed %d: the replica refused an input the home took: %v", seed, err)
			}
		}
		want, _ := home.Export("c")
		got, _ := replica.Export("c")
		// Refusals are not inputs a replica sees.
		want.Full, got.Full = 0, 0
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("seed %d: replica differs:\nhome    %+v\nreplica %+v", seed, want, got)
		}
		ws, _ := home.Seq("c")
		gs, _ := replica.Seq("c")
		if ws != gs {
			t.Fatalf("seed %d: seq %d vs %d", seed, ws, gs)
		}
	}
}
