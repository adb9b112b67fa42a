package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Writers that queue behind a commit in progress share the next one.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	s, _ := open(t)
	hold := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.write(func(tx *bolt.Tx) error {
			<-hold // keep the first commit open while the others queue
			return tx.Bucket(bucketAliases).Put([]byte("first"), []byte("x"))
		})
	}()
	waitFor(t, func() bool { s.group.mu.Lock(); defer s.group.mu.Unlock(); return s.group.busy })
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Create(Record{Origin: uint64(100 + i), Name: fmt.Sprintf("d%d", i), Digest: "sha256:x"})
		}()
	}
	waitFor(t, func() bool { s.group.mu.Lock(); defer s.group.mu.Unlock(); return len(s.group.pending) == n })
	close(hold)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if got := s.group.commits.Load(); got != 2 {
		t.Fatalf("%d commits for 1+%d queued writers, want 2", got, n)
	}
	recs, err := s.Records()
	if err != nil || len(recs) != n {
		t.Fatalf("records %d (%v), want %d", len(recs), err, n)
	}
}

// One writer's failure in a shared commit fails only that writer; the
// others' writes land, each exactly once.
func TestGroupCommitIsolatesAFailure(t *testing.T) {
	s, _ := open(t)
	if err := s.Create(Record{Origin: 1, Name: "taken", Digest: "sha256:x"}); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	go func() {
		_ = s.write(func(tx *bolt.Tx) error { <-hold; return nil })
	}()
	waitFor(t, func() bool { s.group.mu.Lock(); defer s.group.mu.Unlock(); return s.group.busy })
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		name := fmt.Sprintf("d%d", i)
		if i == 3 {
			name = "taken"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Create(Record{Origin: uint64(10 + i), Name: name, Digest: "sha256:x"})
		}()
	}
	waitFor(t, func() bool { s.group.mu.Lock(); defer s.group.mu.Unlock(); return len(s.group.pending) == n })
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, ErrNameTaken) {
				t.Fatalf("writer 3: %v, want ErrNameTaken", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	recs, err := s.Records()
	if err != nil || len(recs) != n {
		t.Fatalf("records %d (%v), want %d (the first plus %d)", len(recs), err, n, n-1)
	}
}

// Many writers at once, each on its own daemon: every snapshot sequence
// is exactly what one writer alone would have got.
func TestGroupCommitConcurrentSnapshots(t *testing.T) {
	s, _ := open(t)
	const daemons, rounds = 8, 20
	for i := range daemons {
		if err := s.Create(Record{Origin: uint64(i + 1), Digest: "sha256:x"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				seq, err := s.PutSnapshot(uint64(i+1), time.Now(), []byte{byte(r)})
				if err != nil || seq != uint64(r+1) {
					t.Errorf("daemon %d round %d: seq %d, %v", i, r, seq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range daemons {
		snap, err := s.LatestSnapshot(uint64(i + 1))
		if err != nil || snap.Seq != rounds || snap.Data[0] != rounds-1 {
			t.Fatalf("daemon %d: %+v %v", i, snap, err)
		}
	}
	if c := s.group.commits.Load(); c > daemons*rounds+daemons {
		t.Fatalf("%d commits for %d writes", c, daemons*rounds+daemons)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// The name check reads only records that may hold the name: a name that
// is a prefix of another's is free, the same name is taken, a stopped
// record's name is free.
func TestNameCheckMatchesWholeNames(t *testing.T) {
	s, _ := open(t)
	for i, name := range []string{"d10", "xd1", "d1x"} {
		if err := s.Create(Record{Origin: uint64(i + 1), Name: name, Digest: "sha256:x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(Record{Origin: 10, Name: "d1", Digest: "sha256:x"}); err != nil {
		t.Fatalf("d1 beside d10, xd1, d1x: %v", err)
	}
	if err := s.Create(Record{Origin: 11, Name: "d1", Digest: "sha256:x"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second d1: %v, want ErrNameTaken", err)
	}
	if err := s.Update(10, func(r *Record) error { r.Stopped = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(Record{Origin: 11, Name: "d1", Digest: "sha256:x"}); err != nil {
		t.Fatalf("d1 after the first stopped: %v", err)
	}
}
