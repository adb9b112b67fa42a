package cluster

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// A member that knows the gossip secret but fails the certificate proof is
// listed alive but unverified, and is never a candidate; one that proves
// it becomes a candidate.
func TestMembershipUnverifiedMemberIsNotACandidate(t *testing.T) {
	errCA := errors.New("certificate signed by unknown authority")
	var tries atomic.Int64
	verify := func(ctx context.Context, m Member) error {
		if m.Meta.NodeID == "mallory" {
			tries.Add(1)
			return errCA
		}
		return nil
	}
	a := startNode(t, "node-a", nodeOpts{verify: verify})
	startNode(t, "node-b", nodeOpts{seeds: seedOf(a), caps: "gpu"})
	startNode(t, "mallory", nodeOpts{seeds: seedOf(a), caps: "evil"})
	waitFor(t, 5*time.Second, "node-b verified and mallory tried", func() (bool, string) {
		b, _ := memberState(a, "node-b")
		return b.Verified && tries.Load() > 0, describe(a.Members())
	})
	m, ok := memberState(a, "mallory")
	if !ok || m.State != StateAlive || m.Verified {
		t.Fatalf("mallory: %+v, want listed alive and unverified", m)
	}
	var ids []string
	for _, c := range a.Candidates() {
		ids = append(ids, c.NodeID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"node-a", "node-b"}) {
		t.Fatalf("candidates %v, want node-a and node-b only", ids)
	}
	f, err := ParseFilter("evil")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Schedule(f, a.Candidates(), "node-a"); !errors.Is(err, ErrNoMatchingNode) {
		t.Fatalf("schedule onto mallory's tag: %v, want ErrNoMatchingNode", err)
	}
	if _, err := MigrationTarget(f, a.Candidates(), "node-a"); !errors.Is(err, ErrNoMatchingNode) {
		t.Fatalf("migration target with mallory's tag: %v, want ErrNoMatchingNode", err)
	}
}

// A member's proof stands for the id and address it proved, not for
// whatever it announces next.
func TestVerificationIsForOneIdentity(t *testing.T) {
	m := &Membership{verifyFn: func(context.Context, Member) error { return nil }, members: map[string]*Member{}, verifying: map[string]string{}, closedCh: make(chan struct{})}
	prev := Member{Name: "x", State: StateAlive, Verified: true, Meta: NodeMeta{NodeID: "id1", QUICAddr: "127.0.0.1:1"}}
	m.members["x"] = &prev
	same := Member{Name: "x", State: StateAlive, Meta: NodeMeta{NodeID: "id1", QUICAddr: "127.0.0.1:1"}}
	m.mu.Lock()
	m.trust(&same, EventUpdate)
	m.mu.Unlock()
	if !same.Verified {
		t.Fatal("an update with the same identity lost its verification")
	}
	moved := Member{Name: "x", State: StateAlive, Meta: NodeMeta{NodeID: "id2", QUICAddr: "127.0.0.1:1"}}
	m.mu.Lock()
	m.closed = true // the proof goroutine returns without touching the member
	m.trust(&moved, EventUpdate)
	m.mu.Unlock()
	if moved.Verified {
		t.Fatal("a member announcing another node id kept the old proof")
	}
	m.wg.Wait()
}
