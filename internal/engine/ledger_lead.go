package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// ErrLedgerFull: the daemon has as many subscriptions as a snapshot holds.
var ErrLedgerFull = errors.New("engine: subscription ledger full")

// Ledger returns a copy of the daemon's channel subscriptions.
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

// SetLedgerEntry records a subscription, replacing the one to the same
// channel.
func (d *Daemon) SetLedgerEntry(s snapshot.Subscription) error {
	s.Token = slices.Clone(s.Token)
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.ledger {
		if d.ledger[i].Channel == s.Channel {
			d.ledger[i] = s
			return nil
		}
	}
	if len(d.ledger) >= snapshot.DefaultMaxLedgerEntries {
		return fmt.Errorf("%w: %d subscriptions", ErrLedgerFull, len(d.ledger))
	}
	d.ledger = append(d.ledger, s)
	return nil
}

// RemoveLedgerEntry drops the subscription to a channel; false if there
// was none.
func (d *Daemon) RemoveLedgerEntry(channel string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.ledger, func(s snapshot.Subscription) bool { return s.Channel == channel })
	if i < 0 {
		return false
	}
	d.ledger = slices.Delete(d.ledger, i, i+1)
	return true
}
