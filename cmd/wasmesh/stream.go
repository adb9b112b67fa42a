package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/payload"
	"github.com/wasmesh/wasmesh/internal/slab"
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
	sent    []*streamEntry // on the current stream, not yet answered, in order
	pmu     sync.Mutex     // held while printing
	ready   []*streamEntry // flushMore's buffer, under pmu
	reached bool           // some event of this command reached the daemon
	failed  int
	input   chan []streamRaw // lines from stdin; closed at its end
	inErr   error            // why reading stdin stopped, if not its end
}

type streamRaw struct {
	n    int
	line []byte // the reader's own copy
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

// maxInputLine bounds one line of stdin (one event).
const maxInputLine = 32 << 20

// printBurst bounds the answers of a burst taken before they are printed.
const printBurst = 64

// inputBatch bounds the lines read from stdin that are handed on at once.
const inputBatch = 256

// readInput reads stdin line by line (a trailing "\r" dropped, as
// bufio.ScanLines does) and hands the lines on in batches: a batch goes
// when it is full or when no further whole line is buffered, so a piped
// file costs one handoff per batch and a line typed by hand goes at once.
func (s *streamSend) readInput(r io.Reader) {
	defer close(s.input)
	br := bufio.NewReaderSize(r, 64<<10)
	var lines slab.Bytes
	var batch []streamRaw
	var long []byte
	var err error
	for n := 1; ; {
		var chunk []byte
		chunk, err = br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > maxInputLine {
				err = fmt.Errorf("line %d is longer than %d bytes", n, maxInputLine)
				break
			}
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if long != nil {
			line, long = append(long, chunk...), nil
		}
		if err == nil || len(line) > 0 {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			batch = append(batch, streamRaw{n: n, line: lines.Copy(line)})
			n++
		}
		if err != nil || len(batch) >= inputBatch || !lineBuffered(br) {
			if len(batch) > 0 {
				s.input <- batch
				batch = nil
			}
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	s.mu.Lock()
	s.inErr = err
	s.mu.Unlock()
}

// lineBuffered reports whether a whole line waits in br.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// run sends everything read from r; it returns the number of failed
// events, or an error that ends the command.
func (s *streamSend) run(ctx context.Context, r io.Reader) (int, error) {
	s.input = make(chan []streamRaw, 8)
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
	lines := make(chan []admin.StreamLine, 4)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	// room wakes the producer when answers made room in the window.
	room := make(chan struct{}, 1)
	s.mu.Lock()
	s.sent = s.sent[:0]
	s.mu.Unlock()
	inputDone := false
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		defer close(lines)
		// send puts batch on the stream as the window makes room; an
		// entry joins s.sent before its line goes, so its answer finds it.
		send := func(batch []*streamEntry) bool {
			for len(batch) > 0 {
				s.mu.Lock()
				k := min(len(batch), s.window-len(s.sent))
				if k > 0 {
					s.sent = append(s.sent, batch[:k]...)
				}
				s.mu.Unlock()
				if k <= 0 {
					select {
					case <-room:
						continue
					case <-stop:
						return false
					}
				}
				ls := make([]admin.StreamLine, k)
				for i, e := range batch[:k] {
					ls[i] = admin.StreamLine{Payload: e.payload, EventID: admin.EventID(e.id), Line: e.n}
				}
				select {
				case lines <- ls:
				case <-stop:
					return false
				}
				batch = batch[k:]
			}
			return true
		}
		if !send(backlog) {
			return
		}
		for {
			var raws []streamRaw
			var ok bool
			select {
			case raws, ok = <-s.input:
			case <-stop:
				return
			}
			if !ok {
				inputDone = true
				return
			}
			batch := make([]*streamEntry, 0, len(raws))
			slab := make([]streamEntry, len(raws)) // one allocation for the batch's entries
			bad := false
			s.mu.Lock()
			for i, raw := range raws {
				e := &slab[i]
				e.n = raw.n
				s.order = append(s.order, e)
				p, err := s.inFmt.DecodeBytes(raw.line)
				if err != nil {
					e.final, e.err = true, fmt.Errorf("%s", err)
					s.failed++
					bad = true
					continue
				}
				if p == nil {
					p = []byte{}
				}
				e.payload = p
				if s.client != "" {
					e.id = s.next
					s.next++
				}
				batch = append(batch, e)
			}
			s.mu.Unlock()
			if bad {
				s.flush()
			}
			if !send(batch) {
				return
			}
		}
	}()
	var abort error
	burst := 0
	_, serr := s.cl.SendStream(ctx, s.daemon, s.client, lines, func(a admin.StreamAnswer, more bool) error {
		s.mu.Lock()
		if len(s.sent) == 0 || s.sent[0].n != a.Line {
			s.mu.Unlock()
			halt()
			return fmt.Errorf("%w: the node answered line %d out of turn", admin.ErrStreamBroken, a.Line)
		}
		e := s.sent[0]
		s.sent[0] = nil
		s.sent = s.sent[1:]
		err := s.answerLocked(e, a)
		s.mu.Unlock()
		wakeRoom(room)
		if err != nil {
			abort = err
			halt()
			return err
		}
		if !e.final {
			// It goes again, in its place: nothing after it may go first.
			halt()
		}
		// Print as answers come, but within a burst only every so often:
		// each print takes the locks and scans for what is ready.
		if burst++; !more || burst >= printBurst {
			burst = 0
			s.flushMore(more)
		}
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
	s.mu.Lock()
	unanswered := s.sent
	s.sent = nil
	s.mu.Unlock()
	for _, e := range unanswered {
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

// wakeRoom leaves a token on c unless one waits there already.
func wakeRoom(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// answerLocked takes the node's answer for e. Caller holds s.mu.
func (s *streamSend) answerLocked(e *streamEntry, a admin.StreamAnswer) error {
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
	// Printing is serialized (the producer flushes a bad line, the reader
	// answers): entries leave s.order and reach print in the same order.
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.mu.Lock()
	ready := s.ready[:0]
	i := 0
	for ; i < len(s.order) && s.order[i].final; i++ {
		ready = append(ready, s.order[i])
	}
	clear(s.order[:i])
	s.order = s.order[i:]
	s.mu.Unlock()
	for _, e := range ready {
		s.print(e)
	}
	clear(ready)
	s.ready = ready[:0] // only under pmu
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
	var obuf []byte
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
				w.WriteByte('\n')
				continue
			}
			obuf = append(outFmt.AppendEncode(obuf[:0], o), '\n')
			w.Write(obuf)
		}
	}
	last := time.Now()
	ss.printed = func(more bool) {
		// Answers that arrived together cost one write; what has arrived
		// is shown before waiting for more.
		if !more {
			w.Flush()
			return
		}
		if now := time.Now(); now.Sub(last) > 20*time.Millisecond {
			w.Flush()
			last = now
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
