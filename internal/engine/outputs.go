package engine

import (
	"sync"

	"github.com/wasmesh/wasmesh/host/chain"
)

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
	if len(o.Items) == 0 {
		return []Output{}
	}
	return o.owned()
}

// owned copies the items and their payloads into two fresh allocations
// (nil when there are none). Each payload is capped at its length, so an
// append by the caller reallocates instead of overwriting the next one.
func (o *Outputs) owned() []Output {
	if len(o.Items) == 0 {
		return nil
	}
	n := 0
	for _, it := range o.Items {
		n += len(it.Payload)
	}
	buf := make([]byte, n)
	out := make([]Output, len(o.Items))
	off := 0
	for i, it := range o.Items {
		out[i].Link = it.Link
		if it.Payload == nil {
			continue
		}
		end := off + copy(buf[off:], it.Payload)
		out[i].Payload = buf[off:end:end]
		off = end
	}
	return out
}

// outputsPool recycles the Outputs that Deliver collects into. Pooled
// buffers are capped so that one large event does not pin its arena.
type outputsPool struct{ p sync.Pool }

const maxPooledArena = 64 << 10

func (p *outputsPool) get() *Outputs {
	if o, ok := p.p.Get().(*Outputs); ok {
		return o
	}
	return new(Outputs)
}

func (p *outputsPool) put(o *Outputs) {
	if cap(o.arena) > maxPooledArena || cap(o.Items) > maxPooledArena/64 {
		return
	}
	clear(o.Items) // drop references to payloads an interceptor returned
	o.reset()
	p.p.Put(o)
}
