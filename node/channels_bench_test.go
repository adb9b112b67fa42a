package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

const (
	fanoutSubscribers = 100
	fanoutBatch       = 100 // payloads per PublishRequest in the throughput phase
	fanoutLatencyMsgs = 200 // single publishes in the latency phase
	remoteBaseline    = 500 // single a.Send round trips in the baseline phase
)

// BenchmarkChannelFanout is one outside publisher on node a streaming
// b.N messages to a channel with 100 counter-wat subscribers spread over
// three in-process nodes. It reports msgs/s and deliveries/s (publish
// start until every subscriber applied every message), publish→applied
// latency from a separate phase of single publishes, and, in the same run,
// the remote-deliver baseline: one a.Send round trip per event to a
// counter on node b.
//
//	go test -run '^$' -bench ChannelFanout -benchtime 2000x ./node/
func BenchmarkChannelFanout(b *testing.B) {
	for _, mode := range []Durability{DurabilitySync, DurabilityInterval} {
		b.Run(string(mode), func(b *testing.B) { benchFanout(b, mode) })
	}
}

// counterValue reads one counter. The benchmark polls it in a loop, so it
// goes to the Counter directly rather than through a registry gather.
func counterValue(b *testing.B, c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.Counter.GetValue()
}

// appliedCounter is the moment a subscriber's node ran a delivery as an
// event: the cheapest observation point that needs no hook in the node.
func appliedCounter(n *Node) prometheus.Counter {
	return n.chSubs.received.WithLabelValues("applied")
}

func benchCount(b *testing.B, n *Node, ref string) int {
	b.Helper()
	res, err := n.Send(context.Background(), ref, []byte("get"))
	if err != nil {
		b.Fatalf("get %s: %v", ref, err)
	}
	if len(res.Outputs) != 1 {
		b.Fatalf("get %s: outputs %q", ref, res.Outputs)
	}
	got, err := strconv.Atoi(string(res.Outputs[0]))
	if err != nil {
		b.Fatalf("get %s: %q", ref, res.Outputs[0])
	}
	return got
}

// stampedPayload carries its publish time (unix nanos); counter-wat does
// not read it, it only gives the message a realistic size and content.
func stampedPayload() []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
}

func percentileMicros(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return float64(s[i]) / float64(time.Microsecond)
}

func fanoutChannelHomedOn(b *testing.B, want *Node, ns []*Node) string {
	var ids []channel.NodeID
	for _, n := range ns {
		ids = append(ids, n.id)
	}
	for i := range 1000 {
		name := fmt.Sprintf("bench/fanout-%d", i)
		if channel.Home(name, ids) == want.id {
			return name
		}
	}
	b.Fatal("no channel name homes there")
	return ""
}

func benchFanout(b *testing.B, mode Durability) {
	ctx := context.Background()
	a := benchNode(b, "a", mode)
	nb := benchNode(b, "b", mode, a.GossipAddr())
	nc := benchNode(b, "c", mode, a.GossipAddr())
	ns := []*Node{a, nb, nc}
	for deadline := time.Now().Add(10 * time.Second); len(a.peers()) != 2 || len(nb.peers()) != 2 || len(nc.peers()) != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("nodes did not see each other")
		}
	}
	for _, n := range ns {
		if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
			b.Fatal(err)
		}
	}
	// Homed on b, not on the publisher's node: each publish is a round
	// trip, as for most publishers of a cluster; a random home would make
	// runs incomparable.
	name := fanoutChannelHomedOn(b, nb, ns)
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: name}); err != nil {
		b.Fatal(err)
	}
	perNode := make([]int, len(ns))
	subs := make([]struct {
		n   *Node
		ref string
	}, fanoutSubscribers)
	for i := range subs {
		n := ns[i%len(ns)]
		ref := fmt.Sprintf("s%d", i)
		if _, err := n.Spawn(ctx, SpawnRequest{Kind: "counter", Name: ref}); err != nil {
			b.Fatal(err)
		}
		if _, err := n.Subscribe(ctx, ref, name, nil); err != nil {
			b.Fatal(err)
		}
		subs[i].n, subs[i].ref = n, ref
		perNode[i%len(ns)]++
	}
	applied := make([]prometheus.Counter, len(ns))
	for i, n := range ns {
		applied[i] = appliedCounter(n)
	}
	sumApplied := func() float64 {
		t := 0.0
		for _, c := range applied {
			t += counterValue(b, c)
		}
		return t
	}

	// Latency phase: one message at a time; for each node, the time from
	// the publish call until its applied counter rose by the number of
	// subscribers it hosts (all of them ran it). The poll sleeps 20 µs
	// between reads so it does not take a core from the nodes; Go's sleep
	// granularity (~50-100 µs here) bounds the resolution.
	lat := make([]time.Duration, 0, fanoutLatencyMsgs*len(ns))
	for range fanoutLatencyMsgs {
		want := make([]float64, len(ns))
		for i, c := range applied {
			want[i] = counterValue(b, c) + float64(perNode[i])
		}
		start := time.Now()
		if _, err := a.Publish(ctx, PublishRequest{Channel: name, Payloads: [][]byte{stampedPayload()}}); err != nil {
			b.Fatal(err)
		}
		seen := make([]bool, len(ns))
		left := len(ns)
		for deadline := start.Add(30 * time.Second); left > 0; {
			for i, c := range applied {
				if !seen[i] && counterValue(b, c) >= want[i] {
					seen[i] = true
					left--
					lat = append(lat, time.Since(start))
				}
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("a single publish was not applied by every subscriber")
			}
			time.Sleep(20 * time.Microsecond)
		}
	}

	// Baseline: one remote exactly-once deliver per event, a to b.
	if _, err := nb.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "base"}); err != nil {
		b.Fatal(err)
	}
	baseLat := make([]time.Duration, 0, remoteBaseline)
	baseStart := time.Now()
	for range remoteBaseline {
		t0 := time.Now()
		if _, err := a.Send(ctx, "base", stampedPayload()); err != nil {
			b.Fatal(err)
		}
		baseLat = append(baseLat, time.Since(t0))
	}
	baseRate := remoteBaseline / time.Since(baseStart).Seconds()
	if got := benchCount(b, nb, "base"); got != remoteBaseline {
		b.Fatalf("baseline counter at %d, want %d", got, remoteBaseline)
	}

	// Throughput phase.
	target := sumApplied() + float64(fanoutSubscribers*b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += fanoutBatch {
		ps := make([][]byte, 0, fanoutBatch)
		for range min(fanoutBatch, b.N-i) {
			ps = append(ps, stampedPayload())
		}
		res, err := a.Publish(ctx, PublishRequest{Channel: name, Payloads: ps, Timeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if res.Accepted != len(ps) {
			b.Fatalf("accepted %d of %d", res.Accepted, len(ps))
		}
	}
	published := time.Since(start)
	for deadline := time.Now().Add(5 * time.Minute); sumApplied() < target; time.Sleep(200 * time.Microsecond) {
		if time.Now().After(deadline) {
			b.Fatalf("applied %v of %v deliveries", sumApplied(), target)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()

	// The applied counters also count a re-run the engine found a
	// duplicate; the counts themselves must be exact.
	want := fanoutLatencyMsgs + b.N
	for _, s := range subs {
		if got := benchCount(b, s.n, s.ref); got != want {
			b.Fatalf("%s on %s counted %d, want %d", s.ref, s.n.Name(), got, want)
		}
	}
	chs, err := a.Channels(ctx)
	if err != nil || len(chs) != 1 || chs[0].Home != "b" {
		b.Fatalf("channels: %+v, %v", chs, err)
	}
	b.Logf("%s: %d messages to %d subscribers in %v (publish calls returned after %v); publishes refused as full (retried): %d", mode, b.N, fanoutSubscribers, elapsed, published, chs[0].Full)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(fanoutSubscribers*b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(percentileMicros(lat, 0.50), "p50-µs")
	b.ReportMetric(percentileMicros(lat, 0.99), "p99-µs")
	b.ReportMetric(baseRate, "remote-deliver-events/s")
	b.ReportMetric(percentileMicros(baseLat, 0.50), "remote-p50-µs")
	b.ReportMetric(percentileMicros(baseLat, 0.99), "remote-p99-µs")
}
