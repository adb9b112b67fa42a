package store

import (
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Group commit: every bbolt transaction ends in an fsync, and bbolt runs one
// writer at a time, so N daemons arriving at once (a drain) wait for N
// fsyncs in a row. Writers that arrive while a commit is on disk queue up
// and the next one commits them all in one transaction, one fsync.
//
// Unlike bolt.DB.Batch, nobody waits for a timer: a lone writer commits at
// once, so a single migration's pause does not grow. The price is the same
// as Batch's: a function may run more than once (when another function of
// its group failed, each is run again alone), so every function passed to
// write must reset what it captures and have no effect outside the
// transaction.

type commitCall struct {
	fn   func(*bolt.Tx) error
	err  error
	lead bool // woken to commit the queue, not because fn committed
	done chan struct{}
}

type groupCommit struct {
	mu      sync.Mutex
	busy    bool // a leader is committing
	pending []*commitCall
	commits atomic.Uint64 // transactions committed or tried, for tests
}

// write runs fn in a read-write transaction, possibly shared with other
// writers'. fn's error is its own: another function's failure never fails fn.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	c := &commitCall{fn: fn, done: make(chan struct{})}
	g := &s.group
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.busy {
		g.mu.Unlock()
		<-c.done
		if !c.lead {
			return c.err
		}
		g.mu.Lock()
	}
	g.busy = true
	calls := g.pending
	g.pending = nil
	g.mu.Unlock()

	s.commit(calls)

	// Hand the queue that built up meanwhile to its first writer rather
	// than committing it here, so this caller returns after one commit.
	g.mu.Lock()
	if len(g.pending) > 0 {
		next := g.pending[0]
		next.lead = true
		close(next.done)
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return c.err
}

// commit runs calls in one transaction; if one of them fails, it runs each
// alone so only the failing one reports its error.
func (s *Store) commit(calls []*commitCall) {
	finish := func(c *commitCall, err error) {
		c.err = err
		if !c.lead {
			close(c.done)
		}
	}
	s.group.commits.Add(1)
	if len(calls) == 1 {
		finish(calls[0], s.db.Update(calls[0].fn))
		return
	}
	failed := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, c := range calls {
			if err := c.fn(tx); err != nil {
				failed = true
				return err
			}
		}
		return nil
	})
	if err == nil || !failed {
		// Committed together, or the commit itself failed for all.
		for _, c := range calls {
			finish(c, err)
		}
		return
	}
	for _, c := range calls {
		finish(c, s.db.Update(c.fn))
	}
}
