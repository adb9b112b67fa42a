//go:build scale

package node

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/directory"
)

// TestDirectoryScale is the 100+ node run (too heavy for the CI suite):
//
//	go test -tags scale -count=1 -timeout 60m -run TestDirectoryScale -v ./node/
//
// WASMESH_DIR_NODES sets the member count (default 100). It reports the
// messages per lookup, lookup latency, and failed sends by name while
// members join, leave and crash, and fails if any send failed or a lookup
// cost more than 3 messages.
func TestDirectoryScale(t *testing.T) {
	size := 100
	if v := os.Getenv("WASMESH_DIR_NODES"); v != "" {
		var err error
		if size, err = strconv.Atoi(v); err != nil || size < 4 {
			t.Fatalf("WASMESH_DIR_NODES=%q", v)
		}
	}
	ctx := context.Background()
	start := time.Now()
	nodes := dirCluster(t, size)
	t.Logf("%d nodes up and converged in %s", size, time.Since(start).Round(time.Second))

	const daemons = 10
	var origins []uint64
	hosts := map[uint64]*Node{}
	for i := range daemons {
		host := nodes[1+(i*7)%(size-1)]
		d, err := nodes[0].Spawn(ctx, SpawnRequest{Kind: "counter", Name: fmt.Sprintf("s%d", i), On: host.Name()})
		if err != nil {
			t.Fatal(err)
		}
		o, _ := abi.ParseOrigin(d.ID)
		origins = append(origins, o)
		hosts[o] = host
	}
	for i, o := range origins {
		waitRegistered(t, nodes, hosts[o], o, fmt.Sprintf("s%d", i))
	}

	// Lookups from nodes that never saw the daemons, by name and by id.
	var lat []time.Duration
	var msgs, maxMsgs, fanouts uint64
	lookups := 0
	for i, n := range nodes {
		if i == 0 || i%3 != 0 {
			continue
		}
		k := i % daemons
		o := origins[k]
		if hosts[o] == n {
			continue
		}
		for _, ref := range []string{fmt.Sprintf("s%d", k), abi.FormatOrigin(o)} {
			n.resolved.forget(fmt.Sprintf("s%d", k))
			n.ep.Routes().Delete(o, ^uint64(0))
			var err error
			t0 := time.Now()
			m, x := lookupCost(t, n, func() { _, err = n.locate(ctx, ref) })
			lat = append(lat, time.Since(t0))
			if err != nil {
				t.Fatalf("lookup of %s from %s: %v", ref, n.Name(), err)
			}
			lookups++
			msgs += m
			maxMsgs = max(maxMsgs, m)
			fanouts += x
		}
	}
	slices.Sort(lat)
	t.Logf("%d lookups among %d nodes: %.2f messages per lookup (max %d; the fan-out would cost %d), %d fan-outs, latency p50 %s p99 %s",
		lookups, size, float64(msgs)/float64(lookups), maxMsgs, size-1, fanouts,
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
	if maxMsgs > 3 || fanouts != 0 {
		t.Fatalf("a lookup cost %d messages, %d fan-outs", maxMsgs, fanouts)
	}

	// Churn: sends by name from fresh senders while members crash, leave
	// and join.
	live := slices.Clone(nodes)
	spared := map[*Node]bool{nodes[0]: true}
	for _, h := range hosts {
		spared[h] = true
	}
	var victims []*Node
	for _, h := range dirHomes(nodes, directory.NameKey("s0")) {
		if !spared[h] {
			victims = append(victims, h)
		}
	}
	for _, n := range nodes {
		if len(victims) >= 5 {
			break
		}
		if !spared[n] && !slices.Contains(victims, n) {
			victims = append(victims, n)
		}
	}
	sends, failed := 0, 0
	counts := make([]int, daemons)
	burst := func() {
		for i := 0; i < 20; i++ {
			k := sends % daemons
			n := live[(sends*13)%len(live)]
			if hosts[origins[k]] == n {
				n = nodes[0]
			}
			n.resolved.forget(fmt.Sprintf("s%d", k))
			n.ep.Routes().Delete(origins[k], ^uint64(0))
			sends++
			if _, err := n.Send(ctx, fmt.Sprintf("s%d", k), []byte("x")); err != nil {
				failed++
				t.Logf("send %d to s%d via %s: %v", sends, k, n.Name(), err)
			} else {
				counts[k]++
			}
		}
	}
	drop := func(v *Node) { live = slices.DeleteFunc(live, func(x *Node) bool { return x == v }) }
	settle := func() {
		burst()
		for _, n := range live {
			dirWaitPeers(t, n, len(live)-1)
		}
		burst()
	}
	victims[0].mem.Shutdown()
	victims[0].ep.Close()
	drop(victims[0])
	settle()
	for _, v := range victims[1:3] {
		v.Close(ctx)
		drop(v)
		settle()
	}
	for i := 0; i < 2; i++ {
		j := dirStart(t, fmt.Sprintf("j%d", i), nodes[0].GossipAddr())
		burst()
		dirWaitPeers(t, j, len(live))
		live = append(live, j)
		settle()
	}
	var churnFanouts uint64
	for _, n := range live {
		_, _, _, x := n.lookupMessages()
		churnFanouts += x
	}
	t.Logf("churn (1 crash, 2 leaves, 2 joins): %d sends by name from senders that forgot the route, %d failed, %d lookups fell back to the fan-out", sends, failed, churnFanouts)
	if failed != 0 {
		t.Fatalf("%d of %d sends by name failed during churn", failed, sends)
	}
}
