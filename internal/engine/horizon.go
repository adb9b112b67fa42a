package engine

// HorizonOf is the last sequence applied from one sender (0: none), so a
// node can judge a channel delivery's place in its stream (a gap, a
// duplicate) before handing it over, without copying the whole horizon.
func (d *Daemon) HorizonOf(sender uint64) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, _ := d.horizon.Get(sender)
	return v
}
