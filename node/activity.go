package node

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Activity is what this node is doing right now that takes a while: the
// migrations it orchestrates (it hosts the daemon being moved) and its
// drain. Migrations other nodes run are theirs to report.
type Activity struct {
	Migrations []MigrationActivity `json:"migrations"`
	Drain      *DrainActivity      `json:"drain,omitempty"`
}

// MigrationActivity is one migration in progress.
type MigrationActivity struct {
	Daemon  string    `json:"daemon"`
	Name    string    `json:"name,omitempty"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Started time.Time `json:"started"`
	MigrateProgress
}

// DrainActivity is the drain in progress, as of its last progress report.
type DrainActivity struct {
	Node    string    `json:"node"`
	Started time.Time `json:"started"`
	DrainProgress
}

// activity is the registry behind Activity. Its zero value is ready: it
// lives in Node so that no package state is shared between nodes.
type activity struct {
	mu     sync.Mutex
	nextID uint64
	migs   map[uint64]*MigrationActivity
	drain  *DrainActivity
}

// trackMigration records a migration until the returned func is called,
// and wraps *progress so each report updates the record. The caller's
// progress may be nil; the wrapper then only records.
func (a *activity) trackMigration(daemon, name, from, to string, progress *func(MigrateProgress)) (done func()) {
	a.mu.Lock()
	if a.migs == nil {
		a.migs = map[uint64]*MigrationActivity{}
	}
	a.nextID++
	key := a.nextID
	a.migs[key] = &MigrationActivity{Daemon: daemon, Name: name, From: from, To: to, Started: time.Now(), MigrateProgress: MigrateProgress{Phase: "starting"}}
	a.mu.Unlock()
	inner := *progress
	*progress = func(p MigrateProgress) {
		a.mu.Lock()
		if m, ok := a.migs[key]; ok {
			m.MigrateProgress = p
		}
		a.mu.Unlock()
		if inner != nil {
			inner(p)
		}
	}
	return func() {
		a.mu.Lock()
		delete(a.migs, key)
		a.mu.Unlock()
	}
}

// trackDrain records the drain of node until done is called; like
// trackMigration it wraps *progress.
func (a *activity) trackDrain(node string, progress *func(DrainProgress)) (done func()) {
	d := &DrainActivity{Node: node, Started: time.Now(), DrainProgress: DrainProgress{Event: "start"}}
	a.mu.Lock()
	a.drain = d
	a.mu.Unlock()
	inner := *progress
	*progress = func(p DrainProgress) {
		a.mu.Lock()
		d.DrainProgress = p
		a.mu.Unlock()
		if inner != nil {
			inner(p)
		}
	}
	return func() {
		a.mu.Lock()
		if a.drain == d {
			a.drain = nil
		}
		a.mu.Unlock()
	}
}

func (a *activity) snapshot() Activity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := Activity{Migrations: make([]MigrationActivity, 0, len(a.migs))}
	for _, m := range a.migs {
		out.Migrations = append(out.Migrations, *m)
	}
	// Stable order so a page redrawing from it does not reshuffle rows.
	slices.SortFunc(out.Migrations, func(x, y MigrationActivity) int {
		return cmp.Or(x.Started.Compare(y.Started), cmp.Compare(x.Daemon, y.Daemon))
	})
	if a.drain != nil {
		d := *a.drain
		out.Drain = &d
	}
	return out
}

// Activity reports the migrations and the drain this node runs now.
func (n *Node) Activity() Activity { return n.activity.snapshot() }
