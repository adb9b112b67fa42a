package channel

import (
	"testing"
)

// One publisher fanning out to 100 subscribers, each acking every delivery:
// the home's own cost per published message, without any network.
func BenchmarkPublishFanout100(b *testing.B) {
	m := New(nodeA, 1, Config{}, nil)
	if err := m.Create(Definition{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	ids := map[uint64]uint64{}
	for o := uint64(1); o <= 100; o++ {
		id, _, err := m.Subscribe("bench", Subscription{Origin: o, Node: NodeID{byte(o % 3)}}, t0)
		if err != nil {
			b.Fatal(err)
		}
		ids[o] = id
	}
	payload := make([]byte, 128)
	delivered := 0
	b.ReportAllocs()
	for i := range b.N {
		seq := uint64(i + 1)
		_, out, err := m.Publish("bench", Publication{Publisher: 1, Seq: seq, Prev: seq - 1, Payload: payload}, t0)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range out {
			if _, err := m.Delivered("bench", AckOf(d), t0); err != nil {
				b.Fatal(err)
			}
			delivered++
		}
	}
	if delivered != 100*b.N {
		b.Fatalf("delivered %d of %d", delivered, 100*b.N)
	}
}
