package driver

// MapSizes reports the length of every per-migration map of m, for the
// tests that check a migrator forgets finished migrations.
func (m *Migrator) MapSizes() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]int{
		"runs": len(m.runs), "byOrigin": len(m.byOrigin), "staged": len(m.staged),
		"precopyAcks": len(m.precopyAcks), "inbound": len(m.inbound.by),
	}
}

// SetInboundBudget changes the node-wide inbound budget of a running
// migrator, so a test can size it from a snapshot it has measured.
func (m *Migrator) SetInboundBudget(n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inbound.limit = n
}

// SetReceiveHook makes f see every migration frame q reads, before the
// migrator does, on the goroutine that reads the frame's stream: a test
// that blocks in f stops that stream from being read.
func (q *QUICMesh) SetReceiveHook(f func(from NodeID, frame []byte)) {
	if f == nil {
		q.recvHook.Store(nil)
		return
	}
	q.recvHook.Store(&f)
}

// LaneBytes reports, per migration, the frame bytes m has queued to all
// peers and not yet handed to the mesh.
func (m *Migrator) LaneBytes() map[uint64]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64]int{}
	for _, p := range m.peers {
		p.mu.Lock()
		for id, l := range p.lanes {
			out[id] += l.bytes
		}
		p.mu.Unlock()
	}
	return out
}
