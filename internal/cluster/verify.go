package cluster

import (
	"context"
	"log/slog"
	"time"
)

// Retry bounds of a member's verification: a member may announce its QUIC
// address before the listener answers, or be briefly unreachable.
const (
	verifyRetryMin = 500 * time.Millisecond
	verifyRetryMax = 30 * time.Second
)

// verifyKey is what a verification proves: the node id at that address.
// A member announcing another id or address must prove it again.
func verifyKey(mem Member) string { return mem.Meta.NodeID + "@" + mem.Meta.QUICAddr }

// trust sets mem.Verified from what earlier proofs established and, if it
// needs a proof, starts one. Called by handle with m.mu held.
//
// The gossip secret only proves a node knows the secret; a leaked secret
// must not be enough to be given work. So a member is a candidate only once
// Config.Verify (a mutual TLS handshake with the cluster CA) succeeded for
// the node id and QUIC address it announces.
func (m *Membership) trust(mem *Member, t EventType) {
	if mem.Local || m.verifyFn == nil {
		mem.Verified = true
		return
	}
	if t == EventLeave || mem.MetaErr != nil || mem.Meta.NodeID == "" || mem.Meta.QUICAddr == "" {
		if prev, ok := m.members[mem.Name]; ok && prev.Verified && verifyKey(*prev) == verifyKey(*mem) {
			mem.Verified = true
		}
		return
	}
	key := verifyKey(*mem)
	if prev, ok := m.members[mem.Name]; ok && prev.Verified && verifyKey(*prev) == key {
		mem.Verified = true
		return
	}
	if m.verifying[mem.Name] == key {
		return
	}
	m.verifying[mem.Name] = key
	m.wg.Add(1)
	go m.runVerify(mem.Name, key, cloneMember(*mem))
}

// runVerify proves one member's identity, retrying with backoff while the
// member still announces the same identity; on success the member becomes
// Verified and subscribers get an update.
func (m *Membership) runVerify(name, key string, mem Member) {
	defer m.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-m.closedCh:
			cancel()
		case <-stop:
		}
	}()
	wait := verifyRetryMin
	logged := false
	for {
		err := m.verifyFn(ctx, mem)
		m.mu.Lock()
		cur, ok := m.members[name]
		current := !m.closed && m.verifying[name] == key && ok && cur.State == StateAlive && verifyKey(*cur) == key
		if !current {
			if m.verifying[name] == key {
				delete(m.verifying, name)
			}
			m.mu.Unlock()
			return
		}
		if err == nil {
			delete(m.verifying, name)
			cur.Verified = true
			cur.Since = time.Now()
			for s := range m.subs {
				s.push(Event{Type: EventUpdate, Member: cloneMember(*cur)})
			}
			m.mu.Unlock()
			m.log.Info("member verified: it holds a certificate of the cluster CA", slog.String("peer", name), slog.String("id", mem.Meta.NodeID))
			return
		}
		m.mu.Unlock()
		if !logged {
			// Once per member identity: a member that keeps failing must not
			// write a line per retry.
			logged = true
			m.log.Warn("member not verified: it knows the gossip secret but did not prove a cluster certificate; it will not be given work",
				slog.String("peer", name), slog.String("id", mem.Meta.NodeID), slog.String("quic", mem.Meta.QUICAddr), slog.Any("error", err))
		}
		select {
		case <-time.After(wait):
		case <-m.closedCh:
			return
		}
		wait = min(2*wait, verifyRetryMax)
	}
}
