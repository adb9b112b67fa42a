package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/payload"
	"github.com/wasmesh/wasmesh/node/admin"
)

// streamSend is `send --stdin`: every line of input is one event, sent over
// one streaming request (POST .../events/stream) that is answered event by
// event, in order. Retries keep the per-event rules of resender: an event
// the node says was not delivered is sent again, in its place, for up to
// retryFor; with a client id any event whose answer was lost is; an event
// whose fate is unknown is reported, never resent. A broken stream is
// reconnected and the rest goes on.
type streamSend struct {
	cl       *admin.Client
	daemon   string
	client   string
	next     uint64 // the next client event id
	retryFor time.Duration
	// window bounds the events sent but not answered: what a crash of
	// the node can leave applied without an answer.
	window int
	inFmt  payload.Format
	// print writes one final entry (outputs, duplicate note or error);
	// entries reach it in input order. printed follows each batch, with
	// whether more answers are on their way (so output may wait for them).
	print   func(e *streamEntry)
	printed func(more bool)

	mu      sync.Mutex
	order   []*streamEntry // read, not yet printed, in input order
	reached bool           // some event of this command reached the daemon
	failed  int
	input   chan streamRaw // lines from stdin; closed at its end
	inErr   error          // why reading stdin stopped, if not its end
}

type streamRaw struct {
	n    int
	text string
}

// streamEntry is one input line on its way.
type streamEntry struct {
	n       int
	payload []byte
	id      uint64
	// final: answered for good (printed next when all before it are).
	final bool
	ans   admin.StreamAnswer
	err   error
	// since: the first answer that asked for a resend (for retryFor).
	since time.Time
}

// errAbort ends the whole command (a daemon never reached, a retry window
// that ran out): the error is the exit.
type errAbort struct{ err error }

func (e *errAbort) Error() string { return e.err.Error() }
func (e *errAbort) Unwrap() error { return e.err }

func (s *streamSend) readInput(r io.Reader) {
	defer close(s.input)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 32<<20)
	for n := 1; sc.Scan(); n++ {
		s.input <- streamRaw{n: n, text: sc.Text()}
	}
	s.mu.Lock()
	s.inErr = sc.Err()
	s.mu.Unlock()
}

// run sends everything read from r; it returns the number of failed
// events, or an error that ends the command.
func (s *streamSend) run(ctx context.Context, r io.Reader) (int, error) {
	s.input = make(chan streamRaw, 1024)
	go s.readInput(r)
	wait := 10 * time.Millisecond
	var brokenSince time.Time
	for {
		more, err := s.attempt(ctx)
		s.flush()
		var ab *errAbort
		if errors.As(err, &ab) {
			return s.failed, ab.err
		}
		if err != nil {
			// The stream could not be opened or broke: go on with the rest
			// from where the answers stopped, within the retry window. A
			// node that cannot be reached any more ends it, unless a
			// client id makes resending safe.
			if !s.reached || ctxErr(err) != nil || s.client == "" && errors.Is(err, admin.ErrUnreachable) {
				return s.failed, err
			}
			if brokenSince.IsZero() {
				brokenSince = time.Now()
			}
			if time.Since(brokenSince) > s.retryFor {
				return s.failed, err
			}
		} else {
			brokenSince = time.Time{}
		}
		if !more {
			s.mu.Lock()
			inErr := s.inErr
			s.mu.Unlock()
			if inErr != nil {
				return s.failed, fail(1, "reading stdin: %v", inErr)
			}
			return s.failed, nil
		}
		if err != nil || s.pendingResend() {
			select {
			case <-ctx.Done():
				return s.failed, ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 250*time.Millisecond)
		} else {
			wait = 10 * time.Millisecond
		}
	}
}

// pendingResend reports whether the next attempt starts with events that
// were answered "not delivered" (then it waits a little first).
func (s *streamSend) pendingResend() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.order {
		if !e.final && !e.since.IsZero() {
			return true
		}
	}
	return false
}

// attempt runs one stream: the events still owed an answer first, then
// new input. more reports whether anything is left to send.
func (s *streamSend) attempt(ctx context.Context) (more bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	var backlog []*streamEntry
	for _, e := range s.order {
		if !e.final {
			backlog = append(backlog, e)
		}
	}
	s.mu.Unlock()
	lines := make(chan admin.StreamLine, 256)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	// sent is what this stream carries, in order, for matching answers.
	sentCh := make(chan *streamEntry, s.window)
	inputDone := false
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		defer close(lines)
		defer close(sentCh)
		send := func(e *streamEntry) bool {
			select {
			case sentCh <- e:
			case <-stop:
				return false
			}
			select {
			case lines <- admin.LineOf(e.payload, e.id, e.n):
				return true
			case <-stop:
				return false
			}
		}
		for _, e := range backlog {
			if !send(e) {
				return
			}
		}
		for {
			var raw streamRaw
			var ok bool
			select {
			case raw, ok = <-s.input:
			case <-stop:
				return
			}
			if !ok {
				inputDone = true
				return
			}
			e := &streamEntry{n: raw.n}
			p, err := s.inFmt.Decode(raw.text)
			s.mu.Lock()
			s.order = append(s.order, e)
			if err != nil {
				e.final, e.err = true, fmt.Errorf("%s", err)
				s.failed++
			} else {
				e.payload = p
				if s.client != "" {
					e.id = s.next
					s.next++
				}
			}
			s.mu.Unlock()
			if err != nil {
				s.flush()
				continue
			}
			if !send(e) {
				return
			}
		}
	}()
	var abort error
	_, serr := s.cl.SendStream(ctx, s.daemon, s.client, lines, func(a admin.StreamAnswer, more bool) error {
		e, ok := <-sentCh
		if !ok || e.n != a.Line {
			halt()
			return fmt.Errorf("%w: the node answered line %d out of turn", admin.ErrStreamBroken, a.Line)
		}
		if err := s.answer(e, a); err != nil {
			abort = err
			halt()
			return err
		}
		if !e.final {
			// It goes again, in its place: nothing after it may go first.
			halt()
		}
		s.flushMore(more)
		return nil
	})
	halt()
	<-produced
	if abort != nil {
		return false, abort
	}
	// Events this stream carried that got no answer. A stream refused or
	// not reached at all applied none (the node reads no event before it
	// answers 200).
	var ae *admin.APIError
	unopened := errors.As(serr, &ae) || errors.Is(serr, admin.ErrUnreachable)
	for e := range sentCh {
		s.mu.Lock()
		switch {
		case serr == nil, unopened:
			// The node answered all it read; it never read these.
		case s.client != "":
			// Resent with the same id: the daemon applies it at most once.
			if e.since.IsZero() {
				e.since = time.Now()
			}
		default:
			e.final, e.err = true, fmt.Errorf("no answer, so it may or may not have been applied: %v", serr)
			s.failed++
		}
		s.mu.Unlock()
	}
	if serr != nil {
		if errors.As(serr, &ae) && !s.reached {
			// Refused before any event went: a typo or a stopped daemon.
			return false, &errAbort{err: apiFail(serr)}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return !inputDone || s.owed(), serr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !inputDone || s.owed(), nil
}

// owed reports whether some read event still waits to be sent. Caller
// holds s.mu.
func (s *streamSend) owed() bool {
	for _, e := range s.order {
		if !e.final {
			return true
		}
	}
	return false
}

// answer takes the node's answer for e.
func (s *streamSend) answer(e *streamEntry, a admin.StreamAnswer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := a.Err()
	if err == nil {
		s.reached = true
		e.final, e.ans = true, a
		return nil
	}
	retry := notDelivered(err) || s.client != "" && resendable(err)
	if retry && !s.reached {
		// A daemon never reached is a typo or a stopped daemon: fail at
		// once instead of waiting out the retry window.
		return &errAbort{err: apiFail(err)}
	}
	if retry {
		if e.since.IsZero() {
			e.since = time.Now()
		}
		if time.Since(e.since) <= s.retryFor {
			return nil // sent again by the next attempt
		}
		if notDelivered(err) {
			// Gone for good: the rest would fare no better.
			return &errAbort{err: apiFail(err)}
		}
	}
	if !streamEventOnly(err) {
		return &errAbort{err: apiFail(err)}
	}
	e.final, e.err = true, err
	s.failed++
	return nil
}

// streamEventOnly is eventOnly for a stream's answers, where a refused
// line (bad input, too large) fails that event only.
func streamEventOnly(err error) bool {
	var ae *admin.APIError
	if errors.As(err, &ae) && (ae.Code == admin.CodeBadRequest || ae.Code == admin.CodeTooLarge) {
		return true
	}
	return eventOnly(err)
}

// flush prints, in input order, every final entry up to the first that is
// still on its way.
func (s *streamSend) flush() { s.flushMore(false) }

func (s *streamSend) flushMore(more bool) {
	s.mu.Lock()
	var ready []*streamEntry
	i := 0
	for ; i < len(s.order) && s.order[i].final; i++ {
		ready = append(ready, s.order[i])
	}
	s.order = s.order[i:]
	s.mu.Unlock()
	for _, e := range ready {
		s.print(e)
	}
	if s.printed != nil {
		s.printed(more)
	}
}

// jsonResult is one line of `send --json`.
type jsonResult struct {
	Event     int      `json:"event"`
	EventID   uint64   `json:"event_id,string,omitempty"`
	Daemon    string   `json:"daemon,omitempty"`
	Node      string   `json:"node,omitempty"`
	Outputs   []string `json:"outputs,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
	Error     string   `json:"error,omitempty"`
	Code      string   `json:"code,omitempty"`
}

func (e *streamEntry) json(outFmt payload.Format) []byte {
	r := jsonResult{Event: e.n, EventID: e.id}
	if e.err != nil {
		r.Error = e.err.Error()
		var ae *admin.APIError
		if errors.As(e.err, &ae) {
			r.Code = ae.Code
		} else {
			r.Code = admin.CodeBadRequest
		}
	} else {
		r.Daemon, r.Node, r.Duplicate = e.ans.Daemon, e.ans.Node, e.ans.Duplicate
		r.Outputs = make([]string, len(e.ans.Outputs))
		for i, o := range e.ans.Outputs {
			r.Outputs[i] = outFmt.Encode(o)
		}
	}
	b, _ := json.Marshal(r)
	return b
}

// sendStdin is send --stdin over one stream.
func sendStdin(c *cli.Context, cl *admin.Client, daemon string, rs *resender, inFmt, outFmt payload.Format, escapeOut bool, w *bufio.Writer, failed *int) error {
	asJSON := c.Bool("json")
	window := c.Int("window")
	if window < 1 || window > 1<<16 {
		return fail(2, "--window must be 1-65536")
	}
	ss := &streamSend{cl: cl, daemon: daemon, client: rs.client, next: rs.next, retryFor: rs.retryFor, inFmt: inFmt, window: window}
	ss.print = func(e *streamEntry) {
		if asJSON {
			w.Write(e.json(outFmt))
			w.WriteByte('\n')
			return
		}
		if e.err != nil {
			w.Flush()
			fmt.Fprintf(c.App.ErrWriter, "error: event %d: %s\n", e.n, termSafe(e.err.Error(), false))
			return
		}
		if e.ans.Duplicate {
			w.Flush()
			fmt.Fprintf(c.App.ErrWriter, "event %d: already applied (client %s, event id %d)\n", e.n, ss.client, e.id)
		}
		for _, o := range e.ans.Outputs {
			if escapeOut {
				w.WriteString(termSafe(string(o), false))
			} else {
				w.WriteString(outFmt.Encode(o))
			}
			w.WriteByte('\n')
		}
	}
	last := time.Now()
	ss.printed = func(more bool) {
		// Answers that arrived together cost one write; what has arrived
		// is shown before waiting for more.
		if !more || time.Since(last) > 20*time.Millisecond {
			w.Flush()
			last = time.Now()
		}
	}
	n, err := ss.run(c.Context, c.App.Reader)
	w.Flush()
	*failed += n
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return apiFail(err)
	}
	return nil
}
