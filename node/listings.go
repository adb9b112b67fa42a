package node

import (
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// A daemon's status in a cluster listing (DaemonInfo.Status).
const (
	// StatusRunning: listed just now by the node that hosts it.
	StatusRunning = "running"
	// StatusFailed: listed just now; it failed and must be restored.
	StatusFailed = "failed"
	// StatusUnreachable: its node did not answer (dead, suspect, or the
	// call failed); the row is the node's last listing, or a row with
	// no id when nothing is known about the node's daemons.
	StatusUnreachable = "unreachable"
	// StatusOffline: its node left the cluster cleanly, so the daemon is
	// checkpointed on that node's disk and comes back when it restarts.
	StatusOffline = "offline"
)

// listingRefresh is how often a node refreshes its peers' listings in the
// background, so it knows what a node that dies later was running.
const listingRefresh = 5 * time.Second

// maxListedDaemons bounds what is kept of one peer's listing. Past it the
// node's row with no id says more daemons may be there.
const maxListedDaemons = 10000

// peerListing is the last listing a peer gave.
type peerListing struct {
	at      time.Time
	daemons []DaemonInfo
	dropped int // daemons beyond maxListedDaemons, not kept
}

// peerListings remembers each member's last listing. It holds at most one
// entry per member the membership still knows (dead and left members are
// forgotten after cluster.Config.ForgetAfter), each bounded.
type peerListings struct {
	mu     sync.Mutex
	byPeer map[nodekey.NodeID]peerListing
}

func (l *peerListings) put(id nodekey.NodeID, daemons []DaemonInfo, at time.Time) {
	kept := daemons[:min(len(daemons), maxListedDaemons)]
	rows := make([]DaemonInfo, len(kept))
	for i, d := range kept {
		d.Horizon = nil // per-sender state: large, and stale once shown
		rows[i] = d
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byPeer == nil {
		l.byPeer = map[nodekey.NodeID]peerListing{}
	}
	l.byPeer[id] = peerListing{at: at, daemons: rows, dropped: len(daemons) - len(kept)}
}

func (l *peerListings) get(id nodekey.NodeID) (peerListing, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.byPeer[id]
	return p, ok
}

// keepOnly forgets the listings of nodes not in members.
func (l *peerListings) keepOnly(members map[nodekey.NodeID]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.byPeer {
		if !members[id] {
			delete(l.byPeer, id)
		}
	}
}

// withStatus marks rows listed by their own node just now.
func withStatus(rows []DaemonInfo) []DaemonInfo {
	for i := range rows {
		rows[i].Status = StatusRunning
		if rows[i].Failed {
			rows[i].Status = StatusFailed
		}
	}
	return rows
}

// lastKnown is what is known of an unreachable node's daemons, marked
// with status, leaving out those listed live elsewhere (moved away). A node
// with nothing known gets one row with no id, so it is never left out.
func (n *Node) lastKnown(id nodekey.NodeID, name, status string, live map[string]bool) []DaemonInfo {
	var out []DaemonInfo
	l, ok := n.listings.get(id)
	for _, d := range l.daemons {
		if live[d.ID] {
			continue
		}
		d.Status = status
		out = append(out, d)
	}
	if !ok || len(out) == 0 || l.dropped > 0 {
		row := DaemonInfo{Node: name, Status: status}
		if id != (nodekey.NodeID{}) {
			row.NodeID = id.String()
		}
		out = append(out, row)
	}
	return out
}

// refreshListings keeps the peers' listings fresh in the background: on a
// timer, when a peer joins, and when a peer announces it is leaving (its
// daemons are checkpointed by then, so the listing taken now is the one
// that stays true while it is away).
func (n *Node) refreshListings() {
	defer n.wg.Done()
	t := time.NewTicker(listingRefresh)
	defer t.Stop()
	events := n.mem.Subscribe(n.ctx)
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			m := ev.Member
			if m.Local || m.State != cluster.StateAlive || (ev.Type != cluster.EventJoin && !(ev.Type == cluster.EventUpdate && m.Leaving)) {
				continue
			}
		case <-t.C:
		}
		n.listPeers(n.ctx)
	}
}
