package directory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// sim is a cluster as the directory sees it: members with their home
// tables, and daemons on hosts. Messages are counted, not sent.
type sim struct {
	t       *testing.T
	rng     *rand.Rand
	next    int
	members *Members
	tables  map[string]*Table
	daemons map[uint64]*Entry // live daemons; Node is the host
	msgs    int               // registrations and unregistrations sent

	lookups, lookupMsgs, maxMsgs, fanouts int
}

func newSim(t *testing.T, n, daemons int, seed uint64) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 1)), tables: map[string]*Table{}, daemons: map[uint64]*Entry{}}
	var ids []string
	for range n {
		id := s.newID()
		ids = append(ids, id)
		s.tables[id] = NewTable(1 << 20)
	}
	s.members = NewMembers(ids)
	for i := range daemons {
		e := &Entry{Origin: s.rng.Uint64(), Node: ids[s.rng.IntN(n)], Epoch: 1, Name: fmt.Sprintf("d%d", i)}
		s.daemons[e.Origin] = e
		s.register(*e, HomesOf(*e, s.members))
	}
	return s
}

func (s *sim) newID() string { s.next++; return nodeID(s.next) }

func (s *sim) register(e Entry, to []string) {
	for _, h := range to {
		s.msgs++
		if tb := s.tables[h]; tb != nil {
			if _, err := tb.Register(e); err != nil {
				s.t.Fatal(err)
			}
		}
	}
}

// rehome is what every live host does after a membership change.
func (s *sim) rehome(old *Members) {
	byHost := map[string][]Entry{}
	for _, e := range s.daemons {
		byHost[e.Node] = append(byHost[e.Node], *e)
	}
	for _, own := range byHost {
		for _, a := range Rehome(own, old, s.members) {
			s.register(a.Entry, a.To)
		}
	}
}

// lookup is what node.locate does: ask the key's homes in rank order, then
// verify at the host the answer names. A miss at both homes would fall
// back to asking every member; the simulation counts and fails it.
func (s *sim) lookup(e Entry, byName bool) {
	key := IDKey(e.Origin)
	if byName {
		key = NameKey(e.Name)
	}
	msgs := 0
	found := false
	for _, h := range s.members.Homes(key, R) {
		msgs++
		var hits []Entry
		if byName {
			hits = s.tables[h].ByName(e.Name)
		} else if got, ok := s.tables[h].ByOrigin(e.Origin); ok {
			hits = []Entry{got}
		}
		if len(hits) != 1 {
			continue
		}
		msgs++ // to the host it names, which answers for what it hosts
		if d := s.daemons[hits[0].Origin]; d != nil && d.Node == hits[0].Node && d.Origin == e.Origin {
			found = true
			break
		}
	}
	s.lookups++
	s.lookupMsgs += msgs
	s.maxMsgs = max(s.maxMsgs, msgs)
	if !found {
		s.fanouts++
	}
}

func (s *sim) lookupAll(n int) {
	live := make([]uint64, 0, len(s.daemons))
	for o := range s.daemons {
		live = append(live, o)
	}
	slices.Sort(live)
	for range n {
		e := s.daemons[live[s.rng.IntN(len(live))]]
		s.lookup(*e, s.rng.IntN(2) == 0)
	}
}

func (s *sim) change(kind string) {
	old := s.members
	ids := old.IDs()
	switch kind {
	case "join":
		id := s.newID()
		s.tables[id] = NewTable(1 << 20)
		ids = append(ids, id)
	case "leave", "crash":
		gone := ids[s.rng.IntN(len(ids))]
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == gone })
		delete(s.tables, gone)
		s.members = NewMembers(ids)
		for o, e := range s.daemons {
			if e.Node != gone {
				continue
			}
			if kind == "crash" {
				delete(s.daemons, o) // gone with its node until it restarts
				continue
			}
			// A clean leave migrates its daemons away first; the target
			// registers the higher epoch at the (new) homes.
			e.Node = ids[s.rng.IntN(len(ids))]
			e.Epoch++
			s.register(*e, HomesOf(*e, s.members))
		}
	}
	s.members = NewMembers(ids)
	// Lookups between the change and the re-homing: a new member may be
	// a home with an empty table, a lost one took its table along.
	s.lookupAll(200)
	s.rehome(old)
	s.lookupAll(200)
}

// TestSimulatedChurn runs 100-300 members through joins, clean leaves and
// crashes: every lookup of a live daemon succeeds through its homes,
// costs at most 3 messages whatever the member count, and re-homing costs
// a small fraction of the daemons per change.
func TestSimulatedChurn(t *testing.T) {
	for _, n := range []int{100, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			const daemons = 1000
			s := newSim(t, n, daemons, uint64(n))
			spawnMsgs := s.msgs
			s.lookupAll(1000)
			kinds := []string{"join", "leave", "crash"}
			s.msgs = 0
			const changes = 30
			for i := range changes {
				s.change(kinds[i%len(kinds)])
			}
			if s.fanouts != 0 {
				t.Fatalf("%d of %d lookups of live daemons missed both homes", s.fanouts, s.lookups)
			}
			if s.maxMsgs > 3 {
				t.Fatalf("a lookup cost %d messages", s.maxMsgs)
			}
			perChange := float64(s.msgs) / changes
			t.Logf("members=%d daemons=%d: spawn registrations %.2f/daemon, lookups %d at %.2f messages each (max %d), re-homing %.0f messages per change (%.3f per daemon)",
				n, daemons, float64(spawnMsgs)/daemons, s.lookups, float64(s.lookupMsgs)/float64(s.lookups), s.maxMsgs, perChange, perChange/daemons)
			// A change touches about 2R/N of the entries (plus a leaving
			// node's own daemons): far from re-registering everything.
			if perChange > daemons/4 {
				t.Fatalf("re-homing cost %.0f messages per change for %d daemons", perChange, daemons)
			}
		})
	}
}

// Two changes before anyone re-homes can take both homes of a key: then,
// and only then, a lookup misses and falls back to the fan-out.
func TestSimulatedDoubleChangeFallsBack(t *testing.T) {
	s := newSim(t, 20, 2000, 7)
	old := s.members
	ids := old.IDs()
	for range 2 {
		ids = append(ids, s.newID())
		s.tables[ids[len(ids)-1]] = NewTable(1 << 20)
	}
	s.members = NewMembers(ids)
	s.lookupAll(2000)
	if s.fanouts == 0 {
		t.Fatal("two joins took no key's both homes: the test shows nothing")
	}
	s.fanouts = 0
	s.rehome(old)
	s.lookupAll(2000)
	if s.fanouts != 0 {
		t.Fatalf("after re-homing %d lookups still missed", s.fanouts)
	}
}
