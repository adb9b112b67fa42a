package snapshot

import "math"

// Limits bounds what Decode accepts. A zero field means "use the default"
// (see DefaultLimits), so a caller can override one cap and keep the rest.
type Limits struct {
	// MaxMemoryPages caps the declared memory size and so the page count.
	MaxMemoryPages uint32
	// MaxGlobals caps the number of globals.
	MaxGlobals uint32
	// MaxHorizon caps the number of senders in the horizon.
	MaxHorizon uint32
	// MaxLedgerEntries caps the number of subscriptions.
	MaxLedgerEntries uint32
	// MaxLedgerBytes caps the sum of publisher, channel and token bytes.
	MaxLedgerBytes uint32
	// MaxStateBytes caps the cooperative state.
	MaxStateBytes uint32
	// MaxEnvelopeBytes caps the sealed identity envelope.
	MaxEnvelopeBytes uint32
	// MaxOutboxEntries caps the undelivered messages in the outbox.
	MaxOutboxEntries uint32
	// MaxOutboxBytes caps the sum of their payload bytes.
	MaxOutboxBytes uint32
	// MaxPublishChannels caps the channels whose last publish the outbox
	// records (the format's count is 16 bits: larger values act as 65535).
	MaxPublishChannels uint32
}

// Defaults. Memory is the wasm32 maximum (the per-daemon page cap of SPEC
// R-T2 is the runtime's to enforce, and it should pass it in here); the rest
// are generous for real daemons yet keep a hostile header from asking for
// gigabytes of bookkeeping.
const (
	DefaultMaxMemoryPages   = 65536 // 4 GiB
	DefaultMaxGlobals       = 1 << 16
	DefaultMaxHorizon       = 1 << 20
	DefaultMaxLedgerEntries = 1 << 16
	DefaultMaxLedgerBytes   = 16 << 20
	DefaultMaxStateBytes    = 256 << 20
	DefaultMaxEnvelopeBytes = 64 << 10
	// The outbox defaults are well above the engine's own bound on a
	// daemon's outbox: a crash recovery that redoes journaled sends on top
	// of a checkpoint's outbox may hold more than the bound for a while.
	DefaultMaxOutboxEntries = 1 << 20
	DefaultMaxOutboxBytes   = 256 << 20
	// The engine keeps at most 256 channels per daemon; the default leaves
	// a later build room to raise that without old nodes refusing its
	// snapshots.
	DefaultMaxPublishChannels = 4096
)

// DefaultLimits returns the default caps.
func DefaultLimits() Limits {
	return Limits{
		MaxMemoryPages:     DefaultMaxMemoryPages,
		MaxGlobals:         DefaultMaxGlobals,
		MaxHorizon:         DefaultMaxHorizon,
		MaxLedgerEntries:   DefaultMaxLedgerEntries,
		MaxLedgerBytes:     DefaultMaxLedgerBytes,
		MaxStateBytes:      DefaultMaxStateBytes,
		MaxEnvelopeBytes:   DefaultMaxEnvelopeBytes,
		MaxOutboxEntries:   DefaultMaxOutboxEntries,
		MaxOutboxBytes:     DefaultMaxOutboxBytes,
		MaxPublishChannels: DefaultMaxPublishChannels,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	orDefault := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	l.MaxMemoryPages = orDefault(l.MaxMemoryPages, d.MaxMemoryPages)
	l.MaxGlobals = orDefault(l.MaxGlobals, d.MaxGlobals)
	l.MaxHorizon = orDefault(l.MaxHorizon, d.MaxHorizon)
	l.MaxLedgerEntries = orDefault(l.MaxLedgerEntries, d.MaxLedgerEntries)
	l.MaxLedgerBytes = orDefault(l.MaxLedgerBytes, d.MaxLedgerBytes)
	l.MaxStateBytes = orDefault(l.MaxStateBytes, d.MaxStateBytes)
	l.MaxEnvelopeBytes = orDefault(l.MaxEnvelopeBytes, d.MaxEnvelopeBytes)
	l.MaxOutboxEntries = orDefault(l.MaxOutboxEntries, d.MaxOutboxEntries)
	l.MaxOutboxBytes = orDefault(l.MaxOutboxBytes, d.MaxOutboxBytes)
	l.MaxPublishChannels = orDefault(l.MaxPublishChannels, d.MaxPublishChannels)
	return l
}

// MaxEncodedSize is the largest encoding Decode can accept under lim. Use it
// to refuse a file or a reassembly before reading it.
func MaxEncodedSize(lim Limits) int64 {
	lim = lim.withDefaults()
	n := uint64(headerSize) + sigSize
	n += uint64(lim.MaxHorizon) * horizonEntrySize
	n += uint64(lim.MaxLedgerEntries)*ledgerEntryFixed + uint64(lim.MaxLedgerBytes)
	n += uint64(lim.MaxGlobals) * globalEntrySize
	n += uint64(lim.MaxMemoryPages) * (4 + PageSize)
	n += uint64(lim.MaxStateBytes) + uint64(lim.MaxEnvelopeBytes)
	n += 4 + MaxAnnotationsBytes
	// Version 4's outbox is the larger: a channel name and prev per entry,
	// and the channels' last publishes.
	n += outboxFixed + uint64(lim.MaxOutboxEntries)*(outboxEntryFixedV4+MaxChannelName) + uint64(lim.MaxOutboxBytes)
	n += publishMarksFixed + uint64(min(lim.MaxPublishChannels, math.MaxUint16))*(publishMarkFixed+MaxChannelName)
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}
