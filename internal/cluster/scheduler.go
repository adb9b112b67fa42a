package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrNoMatchingNode is matched (errors.Is) by every *NoMatchError.
var ErrNoMatchingNode = errors.New("cluster: no matching node")

// Pseudo-requirements reported by NoMatchError next to the filter's own.
const (
	ReqMigrationSupport = "migration support"
	ReqNotSource        = "not the source node"
	ReqNodeID           = "non-empty node id"
)

// Candidate is one node as the scheduler sees it. Build candidates from live
// membership with Membership.Candidates or CandidatesFrom.
type Candidate struct {
	NodeID             string
	Capabilities       Capabilities
	Load               int // daemons currently hosted
	MigrationSupported bool
}

// NoMatchError says why no candidate was chosen: for each requirement, how
// many candidates failed it.
type NoMatchError struct {
	Filter     Filter
	Candidates int
	// Failed maps a requirement (filter syntax, or one of the Req* constants)
	// to the number of candidates that failed it. One candidate can fail
	// several requirements.
	Failed map[string]int
}

func (e *NoMatchError) Error() string {
	if e.Candidates == 0 {
		return "cluster: no matching node: no candidate nodes"
	}
	reqs := e.ranked()
	var b strings.Builder
	fmt.Fprintf(&b, "cluster: no matching node among %d candidate(s) for %q: ", e.Candidates, e.Filter.String())
	for i, r := range reqs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q unmet on %d", r, e.Failed[r])
	}
	return b.String()
}

// Is lets callers test with errors.Is(err, ErrNoMatchingNode).
func (e *NoMatchError) Is(target error) bool { return target == ErrNoMatchingNode }

// MostFailed returns the requirement failed by the most candidates (ties
// broken by name, so the answer is stable) and that count.
func (e *NoMatchError) MostFailed() (requirement string, count int) {
	reqs := e.ranked()
	if len(reqs) == 0 {
		return "", 0
	}
	return reqs[0], e.Failed[reqs[0]]
}

func (e *NoMatchError) ranked() []string {
	reqs := slices.Collect(maps.Keys(e.Failed))
	slices.SortFunc(reqs, func(a, b string) int {
		if c := cmp.Compare(e.Failed[b], e.Failed[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return reqs
}

// Schedule picks the node for a new daemon whose kind requires f: the local
// node if it matches (no network hop, no module transfer), otherwise the
// least-loaded matching node, ties broken by the smaller node id so every
// node computing a placement from the same view agrees.
//
// The result does not depend on the order of candidates. Duplicate node ids
// are tolerated (the least-loaded entry counts). local may be "" or absent.
func Schedule(f Filter, candidates []Candidate, local string) (string, error) {
	if err := f.Validate(); err != nil {
		return "", err
	}
	if local != "" {
		for _, c := range candidates {
			if c.NodeID == local && f.Match(c.Capabilities) {
				return local, nil
			}
		}
	}
	return pick(f, candidates, nil)
}

// MigrationTarget picks where to move a daemon currently on source: a node
// that matches f, advertises migration support and is not source; least
// loaded first, ties by node id. There is no local preference: the
// orchestrator's own location says nothing about a good target.
func MigrationTarget(f Filter, candidates []Candidate, source string) (string, error) {
	if err := f.Validate(); err != nil {
		return "", err
	}
	return pick(f, candidates, func(c Candidate) []string {
		var unmet []string
		if !c.MigrationSupported {
			unmet = append(unmet, ReqMigrationSupport)
		}
		if c.NodeID == source {
			unmet = append(unmet, ReqNotSource)
		}
		return unmet
	})
}

// pick returns the least-loaded, then smallest-id candidate satisfying f and
// extra (which returns the extra requirements a candidate fails).
func pick(f Filter, candidates []Candidate, extra func(Candidate) []string) (string, error) {
	var best *Candidate
	failed := make(map[string]int)
	for i := range candidates {
		c := &candidates[i]
		var unmet []string
		if c.NodeID == "" {
			unmet = append(unmet, ReqNodeID)
		}
		unmet = append(unmet, f.Unmet(c.Capabilities)...)
		if extra != nil {
			unmet = append(unmet, extra(*c)...)
		}
		if len(unmet) > 0 {
			for _, r := range unmet {
				failed[r]++
			}
			continue
		}
		if best == nil || c.Load < best.Load || (c.Load == best.Load && c.NodeID < best.NodeID) {
			best = c
		}
	}
	if best == nil {
		return "", &NoMatchError{Filter: f, Candidates: len(candidates), Failed: failed}
	}
	return best.NodeID, nil
}

// CandidatesFrom turns a membership view into scheduler input: alive members
// whose metadata decoded cleanly, that proved a cluster certificate
// (Verified) and that are not leaving or draining. Suspect, dead,
// left, leaving and undecodable members are left out because placing a daemon there would fail or be unsafe;
// a draining node is being emptied, so nothing new goes there.
func CandidatesFrom(members []Member) []Candidate {
	out := make([]Candidate, 0, len(members))
	for _, m := range members {
		if m.State != StateAlive || m.Leaving || m.MetaErr != nil || m.Meta.NodeID == "" || !m.Verified || m.Meta.Draining {
			continue
		}
		out = append(out, Candidate{
			NodeID:             m.Meta.NodeID,
			Capabilities:       m.Meta.Capabilities,
			Load:               m.Meta.Load,
			MigrationSupported: m.Meta.MigrationSupported,
		})
	}
	return out
}
