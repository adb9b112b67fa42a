package chain

// Horizon is what a daemon has observed: for every sender origin, the highest
// sender sequence delivered to it. It doubles as the per-sender input
// watermark carried in snapshots.
type Horizon struct {
	seen   map[uint64]uint64
	digest uint64
}

// NewHorizon returns an empty horizon.
func NewHorizon() *Horizon { return &Horizon{seen: make(map[uint64]uint64)} }

// Observe records that sender's event seq was delivered. The digest is kept
// incrementally (XOR of a mix of every (sender, seq) pair) so that stamping
// it on a link costs nothing on the hot path.
func (h *Horizon) Observe(sender, seq uint64) {
	old, ok := h.seen[sender]
	if ok && seq <= old {
		return
	}
	if ok {
		h.digest ^= mix(sender, old)
	}
	h.seen[sender] = seq
	h.digest ^= mix(sender, seq)
}

// Digest is a 64-bit summary of the horizon, stamped on each link. It is a
// fingerprint, not a commitment: the full horizon travels in snapshots.
func (h *Horizon) Digest() uint64 { return h.digest }

// Len is the number of distinct senders observed.
func (h *Horizon) Len() int { return len(h.seen) }

// Get returns the highest sequence seen from sender.
func (h *Horizon) Get(sender uint64) (uint64, bool) {
	v, ok := h.seen[sender]
	return v, ok
}

// Entries returns a copy of the horizon as a map.
func (h *Horizon) Entries() map[uint64]uint64 {
	out := make(map[uint64]uint64, len(h.seen))
	for k, v := range h.seen {
		out[k] = v
	}
	return out
}

// HorizonFrom rebuilds a horizon from its entries.
func HorizonFrom(entries map[uint64]uint64) *Horizon {
	h := NewHorizon()
	for k, v := range entries {
		h.Observe(k, v)
	}
	return h
}

// mix is the splitmix64 finaliser over the pair; fixed, so digests agree
// across processes and versions.
func mix(sender, seq uint64) uint64 {
	z := sender*0x9e3779b97f4a7c15 ^ (seq + 0x632be59bd9b4e019)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
