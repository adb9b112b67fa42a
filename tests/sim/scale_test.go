package sim

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"
)

// scaleRow is what one cluster size costs in messages.
type scaleRow struct {
	nodes, daemons                  int
	lookups, migrations, moveSends  int
	perLookup, perMigration, perHop float64
	failed                          int
}

// TestSimScale measures how the messages of a lookup, a migration and a
// send after a move grow with the cluster: a fault-free cluster whose
// routes start cold (only the owner knows a daemon). Without -scale it
// runs two small sizes and checks the lookup cost the scheme implies
// (every peer asked, every peer answers); with -scale it prints the table
// up to 100 nodes and 10,000 daemons. Counts, never timings.
func TestSimScale(t *testing.T) {
	module := echoModule(t)
	sizes := [][2]int{{3, 30}, {6, 60}}
	if *flagScale {
		sizes = [][2]int{{10, 1000}, {25, 2500}, {50, 5000}, {100, 10000}}
	}
	var rows []scaleRow
	for _, sz := range sizes {
		r := runScale(t, sz[0], sz[1], module)
		rows = append(rows, r)
		if r.failed != 0 {
			t.Errorf("%d nodes: %d operations failed", sz[0], r.failed)
		}
		if want := float64(2 * (sz[0] - 1)); r.perLookup != want {
			t.Errorf("%d nodes: %.1f messages per lookup, the fan-out scheme implies %.0f", sz[0], r.perLookup, want)
		}
		if r.perMigration <= 0 {
			t.Errorf("%d nodes: no migration frames counted", sz[0])
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| nodes | daemons | messages per cold lookup | frames per migration | messages per send after a move (stale route) |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %d | %.1f | %.1f | %.1f |\n", r.nodes, r.daemons, r.perLookup, r.perMigration, r.perHop)
	}
	t.Log(b.String())
}

func runScale(t *testing.T, nodes, daemons int, module []byte) scaleRow {
	row := scaleRow{nodes: nodes, daemons: daemons}
	t.Run(fmt.Sprintf("nodes%d", nodes), func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, uint64(nodes))
			s := &sim{cfg: config{nodes: nodes, daemons: daemons, clients: 1}, module: module,
				tick: 20 * time.Millisecond, linger: 30 * time.Second, coldRoutes: true}
			if err := s.setup(); err != nil {
				t.Fatal(err)
			}
			defer s.shutdown()
			hosted := 0
			for _, n := range s.nodes {
				n.gating = false
				hosted += len(n.rt.Daemons())
			}
			if hosted != daemons {
				t.Fatalf("%d daemons running, want %d", hosted, daemons)
			}
			rng := mrand.New(mrand.NewPCG(uint64(nodes), 7))
			c := s.clients[0]
			owner := func(di int) int { return di % nodes }
			// Lookups: a send from a node that does not know the daemon.
			lookups := min(50, daemons)
			before := s.counts()
			for k := range lookups {
				di := k * (daemons / lookups)
				entry := (owner(di) + 1 + rng.IntN(nodes-1)) % nodes
				s.mu.Lock()
				s.startOp(c, di, entry)
				s.mu.Unlock()
				row.failed += s.drain()
			}
			d := s.counts().minus(before)
			row.lookups = lookups
			row.perLookup = float64(d["req:lookup"]+d["resp:lookup"]) / float64(lookups)
			// Migrations, each to another node, orchestrated by the source.
			moves := min(20, daemons)
			moved := make([]int, 0, moves)
			before = s.counts()
			for k := range moves {
				di := k*(daemons/moves) + 1
				src := owner(di)
				tgt := (src + 1 + rng.IntN(nodes-1)) % nodes
				h, err := s.nodes[src].mig.StartMigration(context.Background(), s.daemons[di].origin, nodeID(src), nodeID(tgt))
				if err != nil {
					t.Fatal(err)
				}
				s.mu.Lock()
				s.migs[di] = &migRec{h: h, orch: src, orchInc: s.nodes[src].inc, from: src, to: tgt}
				s.mu.Unlock()
				row.failed += s.drain()
				if err := h.Wait(context.Background()); err != nil {
					t.Errorf("migration of d%d: %v", di, err)
					row.failed++
				}
				moved = append(moved, di)
			}
			d = s.counts().minus(before)
			row.migrations = moves
			row.perMigration = float64(d["frame"]) / float64(moves)
			// Sends after the move from a node whose route still points at
			// the old owner: it follows "moved".
			before = s.counts()
			for _, di := range moved {
				src := owner(di)
				entry := (src + 1) % nodes
				if at := s.copies(s.daemons[di].origin); len(at) == 1 && at[0] == entry {
					entry = (entry + 1) % nodes
				}
				s.mu.Lock()
				s.nodes[entry].routes[s.daemons[di].origin] = src
				s.startOp(c, di, entry)
				s.mu.Unlock()
				row.failed += s.drain()
			}
			d = s.counts().minus(before)
			row.moveSends = len(moved)
			row.perHop = float64(d["req:deliver"]+d["resp:deliver"]+d["req:lookup"]+d["resp:lookup"]) / float64(len(moved))
		})
	})
	return row
}

type counts map[string]int

func (s *sim) counts() counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := counts{}
	for k, v := range s.net.sent {
		c[k] = v
	}
	return c
}

func (c counts) minus(o counts) counts {
	d := counts{}
	for k, v := range c {
		d[k] = v - o[k]
	}
	return d
}

// drain delivers everything in flight, in order, until every client event
// and migration has ended; it returns how many client events failed
// (none should: nothing is faulty here).
func (s *sim) drain() int {
	for range 100000 {
		s.mu.Lock()
		busy := s.net.busy()
		for _, l := range busy {
			for len(s.net.links[l]) > 0 {
				s.deliverMsg(s.net.take(l, 0))
			}
		}
		s.mu.Unlock()
		synctest.Wait()
		if len(busy) == 0 {
			if s.quiet() {
				break
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := 0
	for _, o := range s.ops {
		if !o.done {
			failed++
		}
	}
	return failed
}
