package meshquic

import (
	"bytes"
	"sync"
)

// Route says which node hosts a daemon, as of an epoch. Epochs come from
// whoever decides placement (a spawn or a migration cutover bumps it), so a
// newer announcement replaces an older one whatever order gossip delivers
// them in.
type Route struct {
	Node  NodeID
	Epoch uint64
}

// newer reports whether r should replace cur: a higher epoch wins; at equal
// epochs the higher node id wins, so every node resolves a conflict the same
// way regardless of arrival order.
func (r Route) newer(cur Route) bool {
	if r.Epoch != cur.Epoch {
		return r.Epoch > cur.Epoch
	}
	return bytes.Compare(r.Node[:], cur.Node[:]) > 0
}

type routeEntry struct {
	Route
	deleted bool // a tombstone keeps a late, older Set from resurrecting it
}

// Routes maps a daemon's origin hash to the node hosting it, and records
// where daemons this node used to host have moved to. Safe for concurrent use.
type Routes struct {
	mu    sync.RWMutex
	m     map[uint64]routeEntry
	moved map[uint64]Route
}

// NewRoutes returns an empty table.
func NewRoutes() *Routes {
	return &Routes{m: make(map[uint64]routeEntry), moved: make(map[uint64]Route)}
}

// Set records that origin lives on node as of epoch. It reports whether
// the table changed (false for an older or identical announcement).
func (t *Routes) Set(origin uint64, node NodeID, epoch uint64) bool {
	r := Route{Node: node, Epoch: epoch}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[origin]; ok && !r.newer(cur.Route) {
		return false
	}
	t.m[origin] = routeEntry{Route: r}
	return true
}

// Delete removes origin's route if epoch is at least the current one (a
// stop announced after the latest placement). It reports whether it did.
func (t *Routes) Delete(origin uint64, epoch uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.m[origin]
	if ok && (cur.deleted || epoch < cur.Epoch) {
		return false
	}
	t.m[origin] = routeEntry{Route: Route{Epoch: epoch}, deleted: true}
	return true
}

// Lookup returns origin's current route.
func (t *Routes) Lookup(origin uint64) (Route, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.m[origin]
	if !ok || e.deleted {
		return Route{}, false
	}
	return e.Route, true
}

// SetMoved records, on the node a daemon left, where it went; deliveries
// that still arrive here are answered with a MovedError. It also updates
// the route itself.
func (t *Routes) SetMoved(origin uint64, to NodeID, epoch uint64) {
	t.Set(origin, to, epoch)
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.moved[origin]; ok && !(Route{Node: to, Epoch: epoch}).newer(cur) {
		return
	}
	t.moved[origin] = Route{Node: to, Epoch: epoch}
}

// Moved returns where origin moved to, if this node forwarded it.
func (t *Routes) Moved(origin uint64) (Route, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.moved[origin]
	return r, ok
}

// ClearMoved forgets forwarding information (when the forwarding window
// ends, or the daemon comes back).
func (t *Routes) ClearMoved(origin uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.moved, origin)
}
