package channel

import "fmt"

// Verdict is what a subscriber does with a Deliver.
type Verdict uint8

// Verdicts.
const (
	// Accept: hand the payload to the daemon, then ack (Stream, Seq).
	Accept Verdict = iota + 1
	// Again: already had it; ack again (the first ack may have been lost)
	// and drop it.
	Again
	// Gap: an earlier delivery of the stream has not arrived; drop it
	// without an ack (or report DeliveryFailed) so the home sends it again
	// after the missing one.
	Gap
	// Stale: the delivery belongs to a subscription the daemon no longer
	// holds (it unsubscribed since); drop it, no ack.
	Stale
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Again:
		return "again"
	case Gap:
		return "gap"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Horizon is one subscriber daemon's record of the last seq it accepted per
// stream. It is part of the daemon's state: it must be in every snapshot and
// travel with a migration, or redeliveries after a move would be taken as
// new. The zero value is not usable; use make(Horizon).
type Horizon map[uint64]uint64

// Judge is the acceptance rule for a delivery to a daemon whose horizon
// holds last for d.Stream and whose ledger holds subscription sub of
// d.Channel. A node that keeps the horizon elsewhere (the engine's
// per-sender horizon) calls it with that value; horizons only grow, and the
// rule stays right for any later horizon, so checking before handing the
// event to the engine's own at-or-below dedupe is safe.
func Judge(d Deliver, last, sub uint64) Verdict {
	switch {
	case d.Sub != sub:
		return Stale
	case d.Seq <= last:
		return Again
	case d.Prev > last:
		return Gap
	}
	return Accept
}

// Judge decides about d without changing the horizon.
func (h Horizon) Judge(d Deliver, sub uint64) Verdict { return Judge(d, h[d.Stream], sub) }

// Accept judges d and, if it is to be accepted, advances the horizon. A node
// calls it in the same durable step that hands the payload to the daemon, so
// the horizon and the daemon's state never disagree.
func (h Horizon) Accept(d Deliver, sub uint64) Verdict {
	v := h.Judge(d, sub)
	if v == Accept {
		h[d.Stream] = d.Seq
	}
	return v
}
