// Package history records the operations clients ran against one counter
// daemon (every event adds one and answers the new count; "get" answers it
// without adding) and checks the history the way Jepsen does: from what
// the clients saw, with invocation and completion times, without trusting
// the system under test.
//
// An event is a (client, event id) pair: a client that does not know
// whether an event was applied (Unknown) sends it again under the same id,
// each attempt being one Op. The checks are exact for a counter: each one
// reports only histories no correct system can produce.
//
//   - lost: an acknowledged event missing from the final count (final <
//     acknowledged events), two events acknowledged with the same count (one
//     overwrote the other), or a count above the final one (the state went
//     back).
//   - duplicate: the final count above the events that may have been
//     applied (acknowledged + unknown: one was applied twice, or an event
//     refused for sure was applied), one event acknowledged with two
//     different counts, or an event answered "already applied" when every
//     earlier attempt was refused for sure (a lone "already applied" is not
//     flagged: a client may resend inside one recorded attempt).
//   - stale read: an answer that misses an event acknowledged before the
//     operation began, or a count below one answered before it began (a
//     send must answer more), i.e. real-time order is violated.
//   - future read: a count above the events sent before the operation
//     completed.
package history

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrViolation is wrapped by Result.Err when a check failed.
var ErrViolation = errors.New("history: violation")

// Kind is what an operation did.
type Kind uint8

const (
	Send Kind = iota + 1 // an event that adds one; answers the new count
	Read                 // "get": answers the count
)

func (k Kind) String() string {
	switch k {
	case Send:
		return "send"
	case Read:
		return "read"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Outcome is how an operation ended, as the client saw it.
type Outcome uint8

const (
	Pending   Outcome = iota // invoked, not completed (the client crashed or the run stopped)
	OK                       // answered with Value
	Duplicate                // a send answered "already applied": an earlier attempt applied it
	Failed                   // refused for sure: not applied
	Unknown                  // no answer: may or may not have been applied
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case OK:
		return "ok"
	case Duplicate:
		return "duplicate"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Op is one attempt of one client operation.
type Op struct {
	Index    int // position in the history
	Client   string
	Kind     Kind
	EventID  uint64 // sends: the client event id (retries share it)
	Invoke   time.Time
	Complete time.Time // zero while Pending
	Outcome  Outcome
	Value    uint64 // the count answered, when OK
	Err      string // why, when Failed or Unknown
}

func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s", o.Index, o.Client, o.Kind)
	if o.Kind == Send {
		fmt.Fprintf(&b, " id=%d", o.EventID)
	}
	fmt.Fprintf(&b, " %s", o.Outcome)
	if o.Outcome == OK {
		fmt.Fprintf(&b, " %d", o.Value)
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " (%s)", o.Err)
	}
	return b.String()
}

type eventKey struct {
	client string
	id     uint64
}

// Recorder collects a history; safe for concurrent clients.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
	now func() time.Time
}

// NewRecorder starts an empty history.
func NewRecorder() *Recorder { return &Recorder{now: time.Now} }

// Call is an invoked operation, to be completed once.
type Call struct {
	r *Recorder
	i int
}

// Invoke records the start of an operation.
func (r *Recorder) Invoke(client string, k Kind, eventID uint64) Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.ops)
	r.ops = append(r.ops, Op{Index: i, Client: client, Kind: k, EventID: eventID, Invoke: r.now()})
	return Call{r: r, i: i}
}

func (c Call) complete(o Outcome, v uint64, err error) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	op := &c.r.ops[c.i]
	if op.Outcome != Pending {
		return
	}
	op.Complete, op.Outcome, op.Value = c.r.now(), o, v
	if err != nil {
		op.Err = err.Error()
	}
}

// OK completes the call with the count the daemon answered.
func (c Call) OK(v uint64) { c.complete(OK, v, nil) }

// Duplicate completes a send answered "already applied".
func (c Call) Duplicate() { c.complete(Duplicate, 0, nil) }

// Fail completes a call that surely was not applied.
func (c Call) Fail(err error) { c.complete(Failed, 0, err) }

// Unknown completes a call whose fate the client does not know.
func (c Call) Unknown(err error) { c.complete(Unknown, 0, err) }

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// Violation is one failed check.
type Violation struct {
	Check string // "lost", "duplicate", "stale read", "future read"
	Msg   string
	Ops   []Op
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", v.Check, v.Msg)
	for _, o := range v.Ops {
		fmt.Fprintf(&b, "\n    %s", o)
	}
	return b.String()
}

// Result is what Check found.
type Result struct {
	Ops, Sends, Reads       int
	Events                  int // distinct (client, event id)
	Acked, Unknown, Refused int // events by what the clients learned
	Final                   uint64
	Violations              []Violation
}

func (r Result) String() string {
	return fmt.Sprintf("%d ops (%d sends, %d reads): %d events, %d acknowledged, %d unknown, %d refused; final count %d; %d violations",
		r.Ops, r.Sends, r.Reads, r.Events, r.Acked, r.Unknown, r.Refused, r.Final, len(r.Violations))
}

// Err is nil when every check passed, else it wraps ErrViolation and lists
// the first violations.
func (r Result) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	var b strings.Builder
	for i, v := range r.Violations {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Violations)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s", v)
	}
	return fmt.Errorf("%w: %s%s", ErrViolation, r, b.String())
}

// event gathers the attempts of one (client, event id).
type event struct {
	key       eventKey
	attempts  []Op
	acked     bool
	ackedAt   time.Time // earliest completion of an acknowledging attempt
	firstCall time.Time // earliest invocation
	maybe     bool      // some attempt was Unknown or Pending
}

// Check checks a history of one counter daemon, given final: the count read
// once every operation had completed.
func Check(ops []Op, final uint64) Result {
	res := Result{Ops: len(ops), Final: final}
	add := func(check, msg string, ops ...Op) {
		res.Violations = append(res.Violations, Violation{Check: check, Msg: msg, Ops: ops})
	}
	events := map[eventKey]*event{}
	var order []*event
	var valued []Op // OK ops with a count
	for _, o := range ops {
		switch o.Kind {
		case Send:
			res.Sends++
			k := eventKey{o.Client, o.EventID}
			e := events[k]
			if e == nil {
				e = &event{key: k, firstCall: o.Invoke}
				events[k] = e
				order = append(order, e)
			}
			e.attempts = append(e.attempts, o)
			if o.Invoke.Before(e.firstCall) {
				e.firstCall = o.Invoke
			}
			switch o.Outcome {
			case OK, Duplicate:
				if !e.acked || o.Complete.Before(e.ackedAt) {
					e.ackedAt = o.Complete
				}
				e.acked = true
			case Unknown, Pending:
				e.maybe = true
			}
		case Read:
			res.Reads++
		}
		if o.Outcome == OK {
			valued = append(valued, o)
		}
	}
	res.Events = len(order)

	// Per event: answers that agree, and "already applied" only after an
	// attempt that may have applied it.
	for _, e := range order {
		switch {
		case e.acked:
			res.Acked++
		case e.maybe:
			res.Unknown++
		default:
			res.Refused++
		}
		var first *Op
		for i := range e.attempts {
			a := &e.attempts[i]
			switch a.Outcome {
			case OK:
				if first == nil {
					first = a
				} else if a.Value != first.Value {
					add("duplicate", fmt.Sprintf("event %s/%d acknowledged with counts %d and %d: applied twice", e.key.client, e.key.id, first.Value, a.Value), *first, *a)
				}
			case Duplicate:
				// A lone "already applied" is fine: a client (the CLI) may
				// resend inside what the history records as one attempt.
				earlier, mayHave := 0, false
				for _, b := range e.attempts {
					if b.Index == a.Index || !b.Invoke.Before(a.Complete) {
						continue
					}
					earlier++
					mayHave = mayHave || b.Outcome != Failed && b.Outcome != Duplicate
				}
				if earlier > 0 && !mayHave {
					add("duplicate", fmt.Sprintf("event %s/%d answered already applied, but every earlier attempt was refused", e.key.client, e.key.id), e.attempts...)
				}
			}
		}
	}

	// Distinct events, distinct counts.
	byValue := map[uint64]Op{}
	for _, o := range valued {
		if o.Kind != Send {
			continue
		}
		if o.Value == 0 {
			add("lost", "a send answered count 0", o)
			continue
		}
		if p, ok := byValue[o.Value]; ok && (p.Client != o.Client || p.EventID != o.EventID) {
			add("lost", fmt.Sprintf("two events acknowledged with count %d: one overwrote the other", o.Value), p, o)
			continue
		}
		byValue[o.Value] = o
	}

	// The final count against what may have been applied.
	if final < uint64(res.Acked) {
		add("lost", fmt.Sprintf("final count %d below the %d acknowledged events", final, res.Acked))
	}
	if final > uint64(res.Acked+res.Unknown) {
		add("duplicate", fmt.Sprintf("final count %d above the %d events that may have been applied (%d acknowledged, %d unknown)", final, res.Acked+res.Unknown, res.Acked, res.Unknown))
	}
	for _, o := range valued {
		if o.Value > final {
			add("lost", fmt.Sprintf("count %d above the final %d: the state went back", o.Value, final), o)
		}
	}

	// Real-time order. Every bound below is a count of events or an answer
	// that must already be visible; a linearizable counter meets them all.
	byComplete := slices.Clone(valued)
	slices.SortFunc(byComplete, func(a, b Op) int { return a.Complete.Compare(b.Complete) })
	prefixMax := make([]int, len(byComplete)) // index into byComplete of the largest value so far
	for i := range byComplete {
		prefixMax[i] = i
		if i > 0 && byComplete[prefixMax[i-1]].Value >= byComplete[i].Value {
			prefixMax[i] = prefixMax[i-1]
		}
	}
	var ackTimes, callTimes []time.Time
	for _, e := range order {
		if e.acked {
			ackTimes = append(ackTimes, e.ackedAt)
		}
		callTimes = append(callTimes, e.firstCall)
	}
	slices.SortFunc(ackTimes, time.Time.Compare)
	slices.SortFunc(callTimes, time.Time.Compare)
	before := func(ts []time.Time, t time.Time) int { // how many are strictly before t
		n, _ := slices.BinarySearchFunc(ts, t, func(a, b time.Time) int { return cmp.Or(a.Compare(b), 1) })
		return n
	}
	for _, o := range valued {
		// A send may take effect from its event's first attempt on: a retry
		// can be answered with the count the first one applied.
		start := o.Invoke
		if o.Kind == Send {
			start = events[eventKey{o.Client, o.EventID}].firstCall
		}
		// The largest answer completed before o began.
		if i, _ := slices.BinarySearchFunc(byComplete, start, func(a Op, t time.Time) int { return cmp.Or(a.Complete.Compare(t), 1) }); i > 0 {
			p := byComplete[prefixMax[i-1]]
			if o.Value < p.Value || o.Kind == Send && o.Value == p.Value {
				add("stale read", fmt.Sprintf("answered %d after %d had been answered", o.Value, p.Value), p, o)
			}
		}
		n := before(ackTimes, start)
		if o.Kind == Send {
			n++ // itself
		}
		if o.Value < uint64(n) {
			add("stale read", fmt.Sprintf("answered %d, below the %d events it must count (acknowledged before it began, and a send itself)", o.Value, n), o)
		}
		if n := before(callTimes, o.Complete); o.Value > uint64(n) {
			add("future read", fmt.Sprintf("answered %d though only %d events had been sent when it completed", o.Value, n), o)
		}
	}
	return res
}
