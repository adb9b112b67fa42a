package host

import "github.com/wasmesh/wasmesh/host/chain"

// Event is one input to a daemon.
type Event struct {
	Sender  uint64 // sender's origin hash (0 for an operator/CLI)
	Seq     uint64 // sender's sequence number
	Payload []byte
	// Once asks for exactly-once: the event is refused with
	// ErrDuplicateEvent when the daemon's horizon already holds Seq (or a
	// later one) from Sender, so a sender that retries after a crash or a
	// lost answer never has an event applied twice. Sender must not be 0.
	Once bool
}

// Output is one payload a daemon emitted, wrapped in its causal link.
type Output struct {
	Link    chain.Link
	Payload []byte
}

// Outputs collects the outputs of one event. It is reusable: Deliver resets
// it, so a caller that keeps one per goroutine delivers without allocating.
// Payloads alias an internal buffer and stay valid until the next reuse.
type Outputs struct {
	Items []Output
	arena []byte
	spans []span
}

type span struct{ off, n int }

func (o *Outputs) reset() {
	o.Items = o.Items[:0]
	o.arena = o.arena[:0]
	o.spans = o.spans[:0]
}

func (o *Outputs) add(p []byte) {
	o.spans = append(o.spans, span{off: len(o.arena), n: len(p)})
	o.arena = append(o.arena, p...)
}

func (o *Outputs) count() int { return len(o.spans) }

func (o *Outputs) bytes() int { return len(o.arena) }

// materialize turns spans into Items once the arena no longer moves.
func (o *Outputs) materialize() {
	for _, s := range o.spans {
		o.Items = append(o.Items, Output{Payload: o.arena[s.off : s.off+s.n : s.off+s.n]})
	}
}

// Clone returns outputs that own their payloads.
func (o *Outputs) Clone() []Output {
	out := make([]Output, len(o.Items))
	for i, it := range o.Items {
		out[i] = Output{Link: it.Link, Payload: append([]byte{}, it.Payload...)}
	}
	return out
}
