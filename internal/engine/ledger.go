package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// Errors of SetLedgerEntry; test with errors.Is.
var (
	// ErrLedgerFull: the daemon's subscription ledger already holds as
	// many entries (or bytes) as a snapshot's default decoder limits
	// accept; one more would make its snapshots unrestorable elsewhere.
	ErrLedgerFull = errors.New("host: subscription ledger full")
	// ErrBadLedgerEntry: an entry a snapshot cannot carry (a bad channel
	// name, a publisher id over 65535 bytes).
	ErrBadLedgerEntry = errors.New("host: bad subscription ledger entry")
)

// Ledger returns a copy of the daemon's subscription ledger, the
// subscriptions that travel in its snapshots.
func (d *Daemon) Ledger() []snapshot.Subscription {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]snapshot.Subscription, len(d.ledger))
	for i, s := range d.ledger {
		s.Token = slices.Clone(s.Token)
		out[i] = s
	}
	return out
}

// SetLedgerEntry replaces the ledger entry of s.Channel with s, or appends
// s when the ledger has none. s is copied.
func (d *Daemon) SetLedgerEntry(s snapshot.Subscription) error {
	if err := channel.ValidName(s.Channel); err != nil {
		return fmt.Errorf("%w: %w", ErrBadLedgerEntry, err)
	}
	if len(s.Publisher) > math.MaxUint16 {
		return fmt.Errorf("%w: publisher id of %d bytes", ErrBadLedgerEntry, len(s.Publisher))
	}
	s.Token = slices.Clone(s.Token)
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.ledger, func(e snapshot.Subscription) bool { return e.Channel == s.Channel })
	if i < 0 && len(d.ledger) >= snapshot.DefaultMaxLedgerEntries {
		return fmt.Errorf("%w: %d entries", ErrLedgerFull, len(d.ledger))
	}
	total := ledgerBytes(s)
	for j, e := range d.ledger {
		if j != i {
			total += ledgerBytes(e)
		}
	}
	if total > snapshot.DefaultMaxLedgerBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrLedgerFull, total, snapshot.DefaultMaxLedgerBytes)
	}
	if i >= 0 {
		d.ledger[i] = s
	} else {
		d.ledger = append(d.ledger, s)
	}
	return nil
}

// RemoveLedgerEntry removes the entry of channel; false when there is none.
func (d *Daemon) RemoveLedgerEntry(channel string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.ledger, func(e snapshot.Subscription) bool { return e.Channel == channel })
	if i < 0 {
		return false
	}
	d.ledger = slices.Delete(d.ledger, i, i+1)
	return true
}

// ledgerBytes is what an entry counts against snapshot.MaxLedgerBytes.
func ledgerBytes(s snapshot.Subscription) int {
	return len(s.Publisher) + len(s.Channel) + len(s.Token)
}
