package engine

import "github.com/wasmesh/wasmesh/host/chain"

// journal is a daemon's rollback point: an in-memory capture plus every
// event applied since, with the clock and random bytes each one consumed.
// A failed event is undone by rebuilding from it (see rollbackLocked).
type journal struct {
	ckpt    image
	entries []jentry
	arena   []byte
	invalid error // set when the state could not be captured
	pending bool  // no capture yet: take one before the next event
}

type jentry struct {
	sender, seq uint64
	pay, rec    span
	want        jwant
}

// jwant is what replaying an entry must reproduce: the number of outputs
// and a fingerprint of their links from the head the live run started at.
type jwant struct {
	outs     int
	sum      uint64
	head     chain.Link
	headHash [32]byte
	horizon  uint64
}

// Checkpoint cadence: refresh the capture once the journal holds this many
// events, or once its bytes exceed the live state (so a refresh never costs
// more than the journaling it replaces).
const (
	journalMinEvents = 1024
	journalMaxBytes  = 16 << 20
)

func (j *journal) append(ev *Event, rec []byte, outs int, sum uint64, head chain.Link, headHash [32]byte, horizon uint64) {
	e := jentry{sender: ev.Sender, seq: ev.Seq, want: jwant{outs: outs, sum: sum, head: head, headHash: headHash, horizon: horizon}}
	e.pay = span{off: len(j.arena), n: len(ev.Payload)}
	j.arena = append(j.arena, ev.Payload...)
	e.rec = span{off: len(j.arena), n: len(rec)}
	j.arena = append(j.arena, rec...)
	j.entries = append(j.entries, e)
}

func (j *journal) due() bool {
	if len(j.arena) >= journalMaxBytes {
		return true
	}
	if len(j.entries) < journalMinEvents {
		return false
	}
	return len(j.arena) >= j.ckpt.liveBytes() || len(j.entries) >= 16*journalMinEvents
}

func (j *journal) event(i int) (Event, []byte, jwant) {
	e := j.entries[i]
	ev := Event{Sender: e.sender, Seq: e.seq, Payload: j.arena[e.pay.off : e.pay.off+e.pay.n]}
	return ev, j.arena[e.rec.off : e.rec.off+e.rec.n], e.want
}

func (j *journal) reset() {
	j.entries = j.entries[:0]
	j.arena = j.arena[:0]
	j.invalid = nil
	j.pending = false
}

func (j *journal) invalidate(err error) {
	j.invalid = err
	j.pending = false
	j.entries = j.entries[:0]
	j.arena = j.arena[:0]
}

func (j *journal) release() {
	*j = journal{}
}
