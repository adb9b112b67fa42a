package migrator

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
