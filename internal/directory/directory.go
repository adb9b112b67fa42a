// Package directory is the pure logic of the daemon location directory:
// which members are a key's homes (rendezvous hashing), what a home keeps
// (origin → node, epoch, name and name → origin, ordered by epoch), which
// registrations a membership change makes necessary, and the wire messages
// between a host and a home. It has no sockets, goroutines or clocks, so a
// simulation of hundreds of members runs deterministically in a unit test.
//
// The directory is a hint, never the truth: whoever asks it verifies the
// answer at the node it names (which answers for what it hosts, or "moved").
// That is why a stale entry is harmless and why unregistering needs no
// tombstone: it can only cost one extra message, never a wrong delivery.
package directory

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"sync"
)

// R is how many homes a key has. Two, so that a lookup still finds its
// entry while one home leaves (or crashes) or while a member that just
// joined has become a home and not been filled yet: one membership change
// replaces at most one of a key's top two.
const R = 2

// IDKey and NameKey are the keys a daemon is homed under. The prefixes keep
// a name from ever hashing like an id.
func IDKey(origin uint64) string {
	const hexdigits = "0123456789abcdef"
	b := []byte("id:0000000000000000")
	for i := 18; i >= 3; i-- {
		b[i] = hexdigits[origin&0xf]
		origin >>= 4
	}
	return string(b)
}

// NameKey is the key of a daemon name.
func NameKey(name string) string { return "name:" + name }

// Members is a member set prepared for rendezvous hashing: each member's
// hash is computed once, so picking the homes of a key costs one multiply
// and a few shifts per member.
type Members struct {
	ids []string
	h   []uint64
}

// NewMembers prepares ids (duplicates are dropped; order does not matter).
func NewMembers(ids []string) *Members {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	m := &Members{ids: ids, h: make([]uint64, len(ids))}
	for i, id := range ids {
		m.h[i] = hash(id)
	}
	return m
}

// Len is the member count.
func (m *Members) Len() int { return len(m.ids) }

// IDs returns the members in sorted order.
func (m *Members) IDs() []string { return slices.Clone(m.ids) }

// Has reports whether id is a member.
func (m *Members) Has(id string) bool {
	_, ok := slices.BinarySearch(m.ids, id)
	return ok
}

// Homes returns key's top r members by rendezvous weight, best first.
// Rendezvous (highest random weight) hashing: every member scores every
// key independently, so a change of one member moves only the keys that
// member wins or loses (about r/N of them), and no ring or virtual nodes
// need to be kept in step across the cluster.
func (m *Members) Homes(key string, r int) []string {
	if r <= 0 || len(m.ids) == 0 {
		return nil
	}
	r = min(r, len(m.ids))
	kh := hash(key)
	type scored struct {
		w uint64
		i int
	}
	top := make([]scored, 0, r+1)
	for i, h := range m.h {
		s := scored{w: mix(kh ^ h), i: i}
		// Insertion into a tiny sorted slice: r is 2.
		j := len(top)
		for j > 0 && better(s.w, s.i, top[j-1].w, top[j-1].i) {
			j--
		}
		if j >= r {
			continue
		}
		top = slices.Insert(top, j, s)
		if len(top) > r {
			top = top[:r]
		}
	}
	out := make([]string, len(top))
	for i, s := range top {
		out[i] = m.ids[s.i]
	}
	return out
}

// better orders by weight, then by member (index into the sorted ids), so
// every node ranks a tie the same way.
func better(w1 uint64, i1 int, w2 uint64, i2 int) bool {
	if w1 != w2 {
		return w1 > w2
	}
	return i1 < i2
}

// hash is FNV-1a 64: stable across processes and versions (the homes of
// a key must be the same on every node), and cheap.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finaliser: FNV of similar strings differs in few
// bits, and XOR of two such hashes would rank members far from uniformly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Entry is where a daemon lives as its host registered it.
type Entry struct {
	Origin uint64
	Node   string // the hosting node's id
	Epoch  uint64 // the host's record epoch: a migration's target has a higher one
	Name   string // "" for a daemon without a name
}

// HomesOf is every home of e: those of its id and those of its name.
func HomesOf(e Entry, m *Members) []string {
	hs := m.Homes(IDKey(e.Origin), R)
	if e.Name != "" {
		for _, h := range m.Homes(NameKey(e.Name), R) {
			if !slices.Contains(hs, h) {
				hs = append(hs, h)
			}
		}
	}
	return hs
}

// Assignment says that entry must be registered at To.
type Assignment struct {
	Entry Entry
	To    []string
}

// Rehome is the re-homing a membership change from old to cur makes
// necessary for a host's own entries: each entry goes to the homes it has
// under cur that were not already its homes under old (those were filled
// when they became homes). Homes that were lost need no message: the
// entry left behind is a hint that verification discards. Entries whose
// homes did not change cost nothing, so a change of one member among N
// re-registers about 2R/N of the entries.
func Rehome(own []Entry, old, cur *Members) []Assignment {
	var out []Assignment
	for _, e := range own {
		was := HomesOf(e, old)
		var to []string
		for _, h := range HomesOf(e, cur) {
			if !slices.Contains(was, h) {
				to = append(to, h)
			}
		}
		if len(to) > 0 {
			out = append(out, Assignment{Entry: e, To: to})
		}
	}
	return out
}

// ErrFull is a registration refused because the table holds MaxEntries.
// The daemon stays reachable: lookups that miss fall back to asking every
// member.
var ErrFull = errors.New("directory table full")

// MaxNamesPerEntry bounds the daemons one name maps to at a home: two
// daemons of one name (on different nodes) are a conflict the asker reports
// as ambiguous, and a bound keeps a flood of them from growing a table.
const MaxNamesPerEntry = 4

// Table is what a home keeps. Safe for concurrent use; no method blocks on
// anything but its own short lock.
type Table struct {
	mu       sync.Mutex
	max      int
	byOrigin map[uint64]Entry
	byName   map[string][]uint64
}

// NewTable returns a table that holds at most max entries.
func NewTable(max int) *Table {
	return &Table{max: max, byOrigin: map[uint64]Entry{}, byName: map[string][]uint64{}}
}

// newer reports whether e replaces cur (same origin): a higher epoch wins;
// at an equal epoch the higher node id wins (as the route table decides),
// and the same node may update its own entry (a name given after a move).
func newer(e, cur Entry) bool {
	if e.Epoch != cur.Epoch {
		return e.Epoch > cur.Epoch
	}
	return strings.Compare(e.Node, cur.Node) >= 0
}

// Register records e unless the table has a newer entry for its origin. It
// reports whether the table changed.
func (t *Table) Register(e Entry) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.byOrigin[e.Origin]
	if ok {
		if !newer(e, cur) || cur == e {
			return false, nil
		}
		t.unindexLocked(cur)
	} else if len(t.byOrigin) >= t.max {
		return false, ErrFull
	}
	t.byOrigin[e.Origin] = e
	if e.Name != "" {
		os := t.byName[e.Name]
		if len(os) >= MaxNamesPerEntry {
			// Keep the bound; the name is already ambiguous.
			os = os[1:]
		}
		t.byName[e.Name] = append(slices.Clone(os), e.Origin)
	}
	return true, nil
}

// Unregister removes origin's entry if node registered it at an epoch no
// later than epoch (a stop never removes the entry of a migration's newer
// target). It reports whether it did.
func (t *Table) Unregister(origin uint64, node string, epoch uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.byOrigin[origin]
	if !ok || cur.Node != node || cur.Epoch > epoch {
		return false
	}
	t.unindexLocked(cur)
	delete(t.byOrigin, origin)
	return true
}

func (t *Table) unindexLocked(e Entry) {
	if e.Name == "" {
		return
	}
	os := slices.DeleteFunc(slices.Clone(t.byName[e.Name]), func(o uint64) bool { return o == e.Origin })
	if len(os) == 0 {
		delete(t.byName, e.Name)
	} else {
		t.byName[e.Name] = os
	}
}

// ByOrigin returns origin's entry.
func (t *Table) ByOrigin(origin uint64) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byOrigin[origin]
	return e, ok
}

// ByName returns the entries registered under name, by origin.
func (t *Table) ByName(name string) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	for _, o := range t.byName[name] {
		out = append(out, t.byOrigin[o])
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Origin, b.Origin) })
	return out
}

// Len is the number of entries.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byOrigin)
}

// Prune drops the entries for which keep says no (e.g. those this node is
// no longer a home of) and reports how many went. keep runs without the
// table's lock (ranking a big table over many members takes a while, and
// lookups must not wait for it); an entry that changed meanwhile stays.
func (t *Table) Prune(keep func(Entry) bool) int {
	t.mu.Lock()
	all := make([]Entry, 0, len(t.byOrigin))
	for _, e := range t.byOrigin {
		all = append(all, e)
	}
	t.mu.Unlock()
	drop := slices.DeleteFunc(all, keep)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range drop {
		if cur, ok := t.byOrigin[e.Origin]; ok && cur == e {
			t.unindexLocked(e)
			delete(t.byOrigin, e.Origin)
			n++
		}
	}
	return n
}
