package directory

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func nodeID(i int) string { return fmt.Sprintf("%032x", 0xabc0000+i) }

func members(n int) *Members {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nodeID(i)
	}
	return NewMembers(ids)
}

func TestHomesAreStableAndSpread(t *testing.T) {
	m := members(50)
	count := map[string]int{}
	for k := 0; k < 5000; k++ {
		key := IDKey(uint64(k) * 0x9e3779b97f4a7c15)
		hs := m.Homes(key, R)
		if len(hs) != R || hs[0] == hs[1] {
			t.Fatalf("homes of %s = %v", key, hs)
		}
		// Any order of the same members ranks the same way.
		rev := m.IDs()
		slices.Reverse(rev)
		if got := NewMembers(rev).Homes(key, R); !slices.Equal(got, hs) {
			t.Fatalf("homes depend on member order: %v vs %v", got, hs)
		}
		count[hs[0]]++
	}
	// 5000 keys over 50 members: 100 each on average. A broken mix
	// (e.g. without the finaliser) piles most keys on a few members.
	for id, c := range count {
		if c < 40 || c > 200 {
			t.Fatalf("member %s is first home of %d keys of 5000 (want about 100)", id[24:], c)
		}
	}
	if len(count) != 50 {
		t.Fatalf("only %d of 50 members are a first home", len(count))
	}
}

// One member more or less replaces at most one of a key's two homes: the
// property that lets a lookup succeed through any single change.
func TestOneChangeKeepsOneHome(t *testing.T) {
	m := members(30)
	ids := m.IDs()
	joined := NewMembers(append(m.IDs(), nodeID(1000)))
	left := NewMembers(ids[1:])
	moved := 0
	for k := 0; k < 2000; k++ {
		key := NameKey(fmt.Sprintf("d%d", k))
		before := m.Homes(key, R)
		for _, after := range [][]string{joined.Homes(key, R), left.Homes(key, R)} {
			common := 0
			for _, h := range after {
				if slices.Contains(before, h) {
					common++
				}
			}
			if common < R-1 {
				t.Fatalf("%s: homes %v became %v", key, before, after)
			}
			if common < R {
				moved++
			}
		}
	}
	// About 2R/N of the keys change a home per change (2*2/30 of 4000).
	if moved == 0 || moved > 600 {
		t.Fatalf("%d of 4000 key homes changed", moved)
	}
}

func TestTableEpochOrder(t *testing.T) {
	tb := NewTable(10)
	a, b := nodeID(1), nodeID(2)
	must := func(ok bool, err error) bool {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !must(tb.Register(Entry{Origin: 7, Node: a, Epoch: 1, Name: "x"})) {
		t.Fatal("first registration not taken")
	}
	// The migration target registers a higher epoch; the source's late
	// re-registration of the old epoch must not win it back.
	if !must(tb.Register(Entry{Origin: 7, Node: b, Epoch: 5, Name: "x"})) {
		t.Fatal("newer epoch not taken")
	}
	if must(tb.Register(Entry{Origin: 7, Node: a, Epoch: 1, Name: "x"})) {
		t.Fatal("stale registration overwrote a newer one")
	}
	if e, _ := tb.ByOrigin(7); e.Node != b || e.Epoch != 5 {
		t.Fatalf("entry %+v", e)
	}
	// The source's unregister (its epoch) leaves the target's entry.
	if tb.Unregister(7, a, 1) {
		t.Fatal("old epoch removed the newer entry")
	}
	if got := tb.ByName("x"); len(got) != 1 || got[0].Node != b {
		t.Fatalf("by name: %+v", got)
	}
	// A rename at the same epoch by the same node moves the name index.
	must(tb.Register(Entry{Origin: 7, Node: b, Epoch: 5, Name: "y"}))
	if len(tb.ByName("x")) != 0 || len(tb.ByName("y")) != 1 {
		t.Fatalf("rename: x=%v y=%v", tb.ByName("x"), tb.ByName("y"))
	}
	if !tb.Unregister(7, b, 5) || tb.Len() != 0 || len(tb.ByName("y")) != 0 {
		t.Fatalf("unregister left %d entries", tb.Len())
	}
	// Two daemons under one name are both kept: the asker reports it.
	must(tb.Register(Entry{Origin: 1, Node: a, Epoch: 1, Name: "dup"}))
	must(tb.Register(Entry{Origin: 2, Node: b, Epoch: 1, Name: "dup"}))
	if got := tb.ByName("dup"); len(got) != 2 {
		t.Fatalf("ambiguous name kept %d entries", len(got))
	}
}

func TestTableBounds(t *testing.T) {
	tb := NewTable(3)
	for o := uint64(1); o <= 3; o++ {
		if _, err := tb.Register(Entry{Origin: o, Node: nodeID(1), Epoch: 1, Name: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Register(Entry{Origin: 4, Node: nodeID(1), Epoch: 1}); !errors.Is(err, ErrFull) {
		t.Fatalf("over the bound: %v", err)
	}
	// An update of a known origin is not a new entry.
	if _, err := tb.Register(Entry{Origin: 3, Node: nodeID(1), Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	if tb.Unregister(10, nodeID(1), 9) || tb.Unregister(3, nodeID(2), 9) || tb.Len() != 3 {
		t.Fatalf("len %d", tb.Len())
	}
	big := NewTable(100)
	for o := uint64(1); o <= 10; o++ {
		big.Register(Entry{Origin: o, Node: nodeID(1), Epoch: 1, Name: "same"})
	}
	if got := len(big.ByName("same")); got != MaxNamesPerEntry {
		t.Fatalf("one name maps to %d daemons, bound %d", got, MaxNamesPerEntry)
	}
	if n := big.Prune(func(e Entry) bool { return e.Origin%2 == 0 }); n != 5 || big.Len() != 5 {
		t.Fatalf("pruned %d, left %d", n, big.Len())
	}
}

func TestRehomeSendsOnlyWhatMoved(t *testing.T) {
	old := members(40)
	cur := NewMembers(append(old.IDs(), nodeID(500)))
	var own []Entry
	for o := uint64(1); o <= 1000; o++ {
		own = append(own, Entry{Origin: o * 7919, Node: nodeID(3), Epoch: 1, Name: fmt.Sprintf("d%d", o)})
	}
	as := Rehome(own, old, cur)
	msgs := 0
	for _, a := range as {
		for _, to := range a.To {
			if to != nodeID(500) {
				t.Fatalf("a join re-registers %d at %s, not at the new member", a.Entry.Origin, to[24:])
			}
			msgs++
		}
		if !slices.Contains(HomesOf(a.Entry, cur), nodeID(500)) {
			t.Fatalf("%d re-registered at a member that is not its home", a.Entry.Origin)
		}
	}
	// Each entry has up to 4 homes among 41: the new member is one of
	// them for about 4/41 of the entries.
	if msgs < 40 || msgs > 200 {
		t.Fatalf("a join cost %d registrations for 1000 entries", msgs)
	}
	if len(Rehome(own, cur, cur)) != 0 {
		t.Fatal("no change re-registered something")
	}
}

func TestWireRoundTrip(t *testing.T) {
	e := Entry{Origin: 0xdeadbeef, Node: nodeID(9), Epoch: 42, Name: "a.b-c_1"}
	for _, m := range []Message{
		{Kind: KindRegister, Entry: e},
		{Kind: KindUnregister, Entry: Entry{Origin: 1, Node: nodeID(2), Epoch: 3}},
		{Kind: KindLookupID, Origin: 77},
		{Kind: KindLookupName, Name: "ctr"},
		{Kind: KindAnswer},
		{Kind: KindAnswer, Refused: true},
		{Kind: KindAnswer, Entries: []Entry{e, e, e, e}},
	} {
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(m) {
			t.Fatalf("round trip %+v -> %+v", m, got)
		}
		if _, err := Decode(append(b, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing byte accepted: %v", err)
		}
		if _, err := Decode(b[:len(b)-1]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated accepted: %v", err)
		}
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     {2, byte(KindLookupID), 0, 0, 0, 0, 0, 0, 0, 1},
		"kind":        {1, 9},
		"empty name":  {1, byte(KindLookupName), 0},
		"bad name":    append([]byte{1, byte(KindLookupName), 3}, "a\x1bb"...),
		"answer flag": {1, byte(KindAnswer), 2, 0},
		"answer many": {1, byte(KindAnswer), 0, MaxAnswer + 1},
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s accepted: %v", name, err)
		}
	}
	if _, err := (Message{Kind: KindRegister, Entry: Entry{Node: "short"}}).Encode(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad node id encoded: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	e := Entry{Origin: 5, Node: nodeID(1), Epoch: 2, Name: "n"}
	for _, m := range []Message{{Kind: KindRegister, Entry: e}, {Kind: KindLookupName, Name: "x"}, {Kind: KindAnswer, Entries: []Entry{e}}} {
		b, _ := m.Encode(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes: one encoding per
		// message, so nothing is smuggled in a second spelling.
		out, err := m.Encode(nil)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if string(out) != string(b) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}
