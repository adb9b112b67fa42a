package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func mustFilter(t testing.TB, s string) Filter {
	t.Helper()
	f, err := ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustCaps(t testing.TB, s string) Capabilities {
	t.Helper()
	c, err := ParseCapabilities(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestScheduleExamples(t *testing.T) {
	cands := []Candidate{
		{NodeID: "n3", Capabilities: mustCaps(t, "gpu,zone=eu-1,memory_gb=64"), Load: 2},
		{NodeID: "n1", Capabilities: mustCaps(t, "zone=eu-1,memory_gb=128"), Load: 0},
		{NodeID: "n2", Capabilities: mustCaps(t, "gpu,zone=eu-1,memory_gb=32"), Load: 2},
		{NodeID: "n4", Capabilities: mustCaps(t, "gpu,zone=us-1,memory_gb=256"), Load: 0},
	}
	tests := []struct {
		filter, local, want string
	}{
		{"gpu,zone=eu-1", "", "n2"},            // n2 and n3 tie on load: smaller id
		{"gpu,zone=eu-1", "n3", "n3"},          // local first when it matches
		{"gpu,zone=eu-1", "n1", "n2"},          // local does not match: fall back
		{"memory_gb>=100", "", "n1"},           // n1 and n4 tie on load 0
		{"", "", "n1"},                         // no requirement: least loaded, smallest id
		{"", "n3", "n3"},                       // ... unless local
		{"gpu,memory_gb>=64", "", "n4"},        // least loaded among n3, n4
		{"gpu,memory_gb>=64", "missing", "n4"}, // unknown local id is ignored
	}
	for _, tc := range tests {
		got, err := Schedule(mustFilter(t, tc.filter), cands, tc.local)
		if err != nil || got != tc.want {
			t.Errorf("Schedule(%q, local=%q) = %q, %v; want %q", tc.filter, tc.local, got, err, tc.want)
		}
	}
}

func TestScheduleNoMatchExplains(t *testing.T) {
	cands := []Candidate{
		{NodeID: "a", Capabilities: mustCaps(t, "zone=eu-1")},
		{NodeID: "b", Capabilities: mustCaps(t, "zone=us-1")},
		{NodeID: "c", Capabilities: mustCaps(t, "gpu,zone=us-1")},
	}
	_, err := Schedule(mustFilter(t, "gpu,zone=eu-1"), cands, "a")
	if !errors.Is(err, ErrNoMatchingNode) {
		t.Fatalf("err = %v, want ErrNoMatchingNode", err)
	}
	var nm *NoMatchError
	if !errors.As(err, &nm) {
		t.Fatalf("err %T is not *NoMatchError", err)
	}
	// gpu is missing on a and b, zone=eu-1 on b and c: the tie is broken by
	// name so the explanation is stable.
	if req, n := nm.MostFailed(); req != "gpu" || n != 2 {
		t.Errorf("MostFailed = %q,%d; want gpu,2", req, n)
	}
	if nm.Failed["gpu"] != 2 || nm.Failed["zone=eu-1"] != 2 || nm.Candidates != 3 {
		t.Errorf("Failed = %v, Candidates = %d", nm.Failed, nm.Candidates)
	}
	msg := err.Error()
	for _, want := range []string{"3 candidate", `"gpu" unmet on 2`, `"zone=eu-1" unmet on 2`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}

	_, err = Schedule(Filter{}, nil, "")
	if !errors.Is(err, ErrNoMatchingNode) || !strings.Contains(err.Error(), "no candidate") {
		t.Errorf("empty candidates: %v", err)
	}

	_, err = Schedule(Filter{Min: map[string]float64{"x": 1}}, []Candidate{{NodeID: "a"}, {NodeID: "b", Capabilities: mustCaps(t, "x=0")}}, "")
	if !errors.As(err, &nm) {
		t.Fatal(err)
	}
	if req, n := nm.MostFailed(); req != "x>=1" || n != 2 {
		t.Errorf("MostFailed = %q,%d; want x>=1,2", req, n)
	}
}

func TestScheduleInvalidFilter(t *testing.T) {
	_, err := Schedule(Filter{RequireTags: []string{"bad tag"}}, []Candidate{{NodeID: "a"}}, "a")
	if !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("err = %v, want ErrInvalidFilter", err)
	}
}

func TestMigrationTargetExamples(t *testing.T) {
	cands := []Candidate{
		{NodeID: "src", Capabilities: mustCaps(t, "gpu"), MigrationSupported: true, Load: 0},
		{NodeID: "old", Capabilities: mustCaps(t, "gpu"), MigrationSupported: false, Load: 0},
		{NodeID: "b", Capabilities: mustCaps(t, "gpu"), MigrationSupported: true, Load: 5},
		{NodeID: "a", Capabilities: mustCaps(t, "gpu"), MigrationSupported: true, Load: 5},
		{NodeID: "cpu", Capabilities: mustCaps(t, ""), MigrationSupported: true, Load: 0},
	}
	got, err := MigrationTarget(mustFilter(t, "gpu"), cands, "src")
	if err != nil || got != "a" {
		t.Errorf("MigrationTarget = %q, %v; want a", got, err)
	}
	_, err = MigrationTarget(mustFilter(t, "gpu"), cands[:2], "src")
	var nm *NoMatchError
	if !errors.As(err, &nm) || nm.Failed[ReqNotSource] != 1 || nm.Failed[ReqMigrationSupport] != 1 {
		t.Errorf("err = %v", err)
	}
}

func TestCandidatesFrom(t *testing.T) {
	ok := NodeMeta{NodeID: "ok", Load: 3, MigrationSupported: true, Capabilities: mustCaps(t, "gpu")}
	members := []Member{
		{Name: "ok", NodeID: "ok", State: StateAlive, Meta: ok, Verified: true},
		// Knows the gossip secret, never proved a cluster certificate.
		{Name: "unverified", NodeID: "unverified", State: StateAlive, Meta: NodeMeta{NodeID: "unverified", Capabilities: mustCaps(t, "gpu")}},
		{Name: "dead", NodeID: "dead", State: StateDead, Meta: NodeMeta{NodeID: "dead"}},
		{Name: "left", NodeID: "left", State: StateLeft, Meta: NodeMeta{NodeID: "left"}},
		{Name: "suspect", NodeID: "suspect", State: StateSuspect, Meta: NodeMeta{NodeID: "suspect"}},
		{Name: "leaving", NodeID: "leaving", State: StateAlive, Leaving: true, Meta: NodeMeta{NodeID: "leaving"}},
		{Name: "bad", State: StateAlive, MetaErr: ErrInvalidMeta},
	}
	got := CandidatesFrom(members)
	want := []Candidate{{NodeID: "ok", Capabilities: ok.Capabilities, Load: 3, MigrationSupported: true}}
	if len(got) != 1 || got[0].NodeID != want[0].NodeID || got[0].Load != 3 || !got[0].MigrationSupported || !got[0].Capabilities.Has("gpu") {
		t.Fatalf("CandidatesFrom = %+v, want %+v", got, want)
	}
}

// --- properties ---

var (
	propTags   = []string{"gpu", "ssd", "arm", "tpu"}
	propZones  = []string{"eu-1", "eu-2", "us-1"}
	propMemory = []string{"8", "16", "32", "64", "lots"}
)

func genCapabilities() *rapid.Generator[Capabilities] {
	return rapid.Custom(func(t *rapid.T) Capabilities {
		var c Capabilities
		c.Tags = rapid.SliceOfDistinct(rapid.SampledFrom(propTags), rapid.ID).Draw(t, "tags")
		c.Values = map[string]string{}
		if rapid.Bool().Draw(t, "hasZone") {
			c.Values["zone"] = rapid.SampledFrom(propZones).Draw(t, "zone")
		}
		if rapid.Bool().Draw(t, "hasMem") {
			c.Values["memory_gb"] = rapid.SampledFrom(propMemory).Draw(t, "mem")
		}
		return c.Normalize()
	})
}

func genFilter() *rapid.Generator[Filter] {
	return rapid.Custom(func(t *rapid.T) Filter {
		var f Filter
		f.RequireTags = rapid.SliceOfNDistinct(rapid.SampledFrom(propTags), 0, 2, rapid.ID).Draw(t, "req")
		if rapid.Bool().Draw(t, "wantZone") {
			f.Equal = map[string]string{"zone": rapid.SampledFrom(propZones).Draw(t, "zone")}
		}
		if rapid.Bool().Draw(t, "wantMem") {
			f.Min = map[string]float64{"memory_gb": float64(rapid.IntRange(0, 70).Draw(t, "min"))}
		}
		return f
	})
}

func genCandidates() *rapid.Generator[[]Candidate] {
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Candidate {
		return Candidate{
			NodeID:             rapid.SampledFrom([]string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}).Draw(t, "id"),
			Capabilities:       genCapabilities().Draw(t, "caps"),
			Load:               rapid.IntRange(0, 4).Draw(t, "load"),
			MigrationSupported: rapid.Bool().Draw(t, "mig"),
		}
	}), 0, 8)
}

func TestPropScheduleSound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFilter().Draw(t, "filter")
		cands := genCandidates().Draw(t, "cands")
		local := rapid.SampledFrom([]string{"", "n0", "n3", "zz"}).Draw(t, "local")

		got, err := Schedule(f, cands, local)
		var matching []Candidate
		for _, c := range cands {
			if f.Match(c.Capabilities) {
				matching = append(matching, c)
			}
		}
		if len(matching) == 0 {
			if !errors.Is(err, ErrNoMatchingNode) {
				t.Fatalf("no match expected, got %q, %v", got, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("match exists but err = %v", err)
		}
		// Never a non-matching node.
		if !slices.ContainsFunc(matching, func(c Candidate) bool { return c.NodeID == got }) {
			t.Fatalf("chose %q which does not match %v", got, f)
		}
		// Local first.
		if slices.ContainsFunc(matching, func(c Candidate) bool { return c.NodeID == local }) {
			if got != local {
				t.Fatalf("local %q matches but chose %q", local, got)
			}
			return
		}
		// Otherwise least loaded, then smallest id.
		best := slices.MinFunc(matching, func(a, b Candidate) int {
			if a.Load != b.Load {
				return a.Load - b.Load
			}
			return strings.Compare(a.NodeID, b.NodeID)
		})
		if got != best.NodeID {
			t.Fatalf("chose %q, want least-loaded %q", got, best.NodeID)
		}
	})
}

func TestPropScheduleOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFilter().Draw(t, "filter")
		cands := genCandidates().Draw(t, "cands")
		perm := rapid.Permutation(cands).Draw(t, "perm")
		local := rapid.SampledFrom([]string{"", "n1"}).Draw(t, "local")

		a, errA := Schedule(f, cands, local)
		b, errB := Schedule(f, perm, local)
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("order changed the answer: %q/%v vs %q/%v", a, errA, b, errB)
		}
		if errA != nil && errA.Error() != errB.Error() {
			t.Fatalf("order changed the explanation: %v vs %v", errA, errB)
		}
		ma, errA := MigrationTarget(f, cands, local)
		mb, errB := MigrationTarget(f, perm, local)
		if ma != mb || (errA == nil) != (errB == nil) {
			t.Fatalf("order changed the migration target: %q vs %q", ma, mb)
		}
	})
}

func TestPropMigrationTargetSound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFilter().Draw(t, "filter")
		cands := genCandidates().Draw(t, "cands")
		source := rapid.SampledFrom([]string{"n0", "n1", "n2"}).Draw(t, "source")

		got, err := MigrationTarget(f, cands, source)
		eligible := slices.ContainsFunc(cands, func(c Candidate) bool {
			return c.NodeID != source && c.MigrationSupported && f.Match(c.Capabilities)
		})
		if !eligible {
			if !errors.Is(err, ErrNoMatchingNode) {
				t.Fatalf("no eligible target, got %q, %v", got, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got == source {
			t.Fatalf("chose the source %q", source)
		}
		if !slices.ContainsFunc(cands, func(c Candidate) bool {
			return c.NodeID == got && c.MigrationSupported && f.Match(c.Capabilities)
		}) {
			t.Fatalf("chose %q, which lacks migration support or does not match", got)
		}
	})
}

func TestPropNoMatchCountsAreConsistent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFilter().Draw(t, "filter")
		cands := genCandidates().Draw(t, "cands")
		_, err := Schedule(f, cands, "")
		var nm *NoMatchError
		if !errors.As(err, &nm) {
			return
		}
		if nm.Candidates != len(cands) {
			t.Fatalf("Candidates = %d, want %d", nm.Candidates, len(cands))
		}
		for req, n := range nm.Failed {
			if n < 1 || n > len(cands) {
				t.Fatalf("requirement %q failed on %d of %d", req, n, len(cands))
			}
		}
		if len(cands) > 0 {
			if req, n := nm.MostFailed(); req == "" || n == 0 {
				t.Fatalf("no most-failed requirement in %v", nm.Failed)
			}
		}
	})
}

func TestPropFilterStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFilter().Draw(t, "filter")
		back, err := ParseFilter(f.String())
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", f.String(), err)
		}
		if back.String() != f.String() {
			t.Fatalf("round trip %q -> %q", f.String(), back.String())
		}
		for range 4 {
			c := genCapabilities().Draw(t, "caps")
			if back.Match(c) != f.Match(c) {
				t.Fatalf("round-tripped filter disagrees on %v", c)
			}
		}
	})
}

func TestPropCapabilitiesStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCapabilities().Draw(t, "caps")
		back, err := ParseCapabilities(c.String())
		if err != nil {
			t.Fatal(err)
		}
		if !back.Equal(c) {
			t.Fatalf("round trip %v -> %v", c, back)
		}
	})
}

func ExampleSchedule() {
	f, _ := ParseFilter("gpu,memory_gb>=32")
	gpu, _ := ParseCapabilities("gpu,memory_gb=64")
	small, _ := ParseCapabilities("gpu,memory_gb=16")
	id, err := Schedule(f, []Candidate{
		{NodeID: "b", Capabilities: gpu, Load: 1},
		{NodeID: "a", Capabilities: gpu, Load: 1},
		{NodeID: "local", Capabilities: small},
	}, "local")
	fmt.Println(id, err)
	// Output: a <nil>
}
