package engine

import (
	"fmt"
	"time"
)

// Limits box one daemon in (SPEC R-T2). Zero fields take the defaults.
type Limits struct {
	// MaxMemoryBytes caps linear memory; rounded down to whole 64 KiB pages.
	MaxMemoryBytes uint64
	// EventTimeout is the CPU budget of one call into the guest.
	EventTimeout time.Duration
	// MaxInputBytes caps one event payload (and cooperative restore state).
	MaxInputBytes int
	// MaxOutputBytes caps the sum of output payload bytes of one event.
	MaxOutputBytes int
	// MaxOutputs caps the number of outputs of one event.
	MaxOutputs int
	// MaxOutputSize caps one output payload.
	MaxOutputSize int
	// MaxLogLines caps log lines per event; further lines are dropped and
	// counted, never an error (a chatty guest must not fail its events).
	MaxLogLines int
	// MaxLogLineBytes truncates one log line.
	MaxLogLineBytes int
	// MaxStateBytes caps what a cooperative guest writes in wasmesh_snapshot.
	MaxStateBytes int
	// MaxReadingsBytes caps the clock and random bytes one call into the
	// guest reads (8 per clock reading). Every reading is recorded in the
	// rollback journal and the node's write-ahead journal, so this bounds
	// what an event adds to them; over it the event fails with
	// ErrReadingsLimit.
	MaxReadingsBytes int
}

// Default limits, also documented in abi/README.md.
const (
	DefaultMaxMemoryBytes  = 256 << 20
	DefaultEventTimeout    = time.Second
	DefaultMaxInputBytes   = 16 << 20
	DefaultMaxOutputBytes  = 4 << 20
	DefaultMaxOutputs      = 4096
	DefaultMaxOutputSize   = 1 << 20
	DefaultMaxLogLines     = 100
	DefaultMaxLogLineBytes = 4096
	DefaultMaxStateBytes   = 64 << 20
	// DefaultMaxReadingsBytes: 1 MiB is 131,072 clock readings or a 1 MiB
	// random key per event.
	DefaultMaxReadingsBytes = 1 << 20
)

// WithDefaults fills zero fields with the package defaults.
func (l Limits) WithDefaults() Limits {
	return l.Or(Limits{
		MaxMemoryBytes: DefaultMaxMemoryBytes, EventTimeout: DefaultEventTimeout,
		MaxInputBytes: DefaultMaxInputBytes, MaxOutputBytes: DefaultMaxOutputBytes,
		MaxOutputs: DefaultMaxOutputs, MaxOutputSize: DefaultMaxOutputSize,
		MaxLogLines: DefaultMaxLogLines, MaxLogLineBytes: DefaultMaxLogLineBytes,
		MaxStateBytes: DefaultMaxStateBytes, MaxReadingsBytes: DefaultMaxReadingsBytes,
	})
}

// Or fills each zero field of l from fallback.
func (l Limits) Or(fallback Limits) Limits {
	pick(&l.MaxMemoryBytes, fallback.MaxMemoryBytes)
	pick(&l.EventTimeout, fallback.EventTimeout)
	pick(&l.MaxInputBytes, fallback.MaxInputBytes)
	pick(&l.MaxOutputBytes, fallback.MaxOutputBytes)
	pick(&l.MaxOutputs, fallback.MaxOutputs)
	pick(&l.MaxOutputSize, fallback.MaxOutputSize)
	pick(&l.MaxLogLines, fallback.MaxLogLines)
	pick(&l.MaxLogLineBytes, fallback.MaxLogLineBytes)
	pick(&l.MaxStateBytes, fallback.MaxStateBytes)
	pick(&l.MaxReadingsBytes, fallback.MaxReadingsBytes)
	return l
}

func pick[T comparable](v *T, fallback T) {
	var zero T
	if *v == zero {
		*v = fallback
	}
}

// MemoryPages is the memory cap in wasm pages.
func (l Limits) MemoryPages() uint32 {
	p := l.MaxMemoryBytes / 65536
	if p > 65536 {
		p = 65536
	}
	return uint32(p)
}

// Validate refuses limits that cannot work.
func (l Limits) Validate() error {
	if l.MaxMemoryBytes != 0 && l.MaxMemoryBytes < 65536 {
		return fmt.Errorf("%w: %d bytes is less than one 64 KiB page", ErrMemoryLimit, l.MaxMemoryBytes)
	}
	if l.EventTimeout < 0 || l.MaxInputBytes < 0 || l.MaxOutputBytes < 0 || l.MaxOutputs < 0 || l.MaxOutputSize < 0 ||
		l.MaxLogLines < 0 || l.MaxLogLineBytes < 0 || l.MaxStateBytes < 0 || l.MaxReadingsBytes < 0 {
		return fmt.Errorf("host: negative limit in %+v", l)
	}
	return nil
}

// TableEntryBytes is what one table entry is charged against the memory
// limit: wazero holds an entry as an 8-byte reference, and a growing slice
// may hold up to twice its length while it is copied.
const TableEntryBytes = 16

// TableEntries is the table cap (all of a module's tables together) that
// goes with a memory cap of capPages: tables may use as many host bytes as
// linear memory may, at TableEntryBytes an entry. 0 pages means no cap.
func TableEntries(capPages uint32) uint64 {
	return uint64(capPages) * 65536 / TableEntryBytes
}
