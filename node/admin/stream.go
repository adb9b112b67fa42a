package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/wasmesh/wasmesh/internal/slab"
	"github.com/wasmesh/wasmesh/node"
)

// Streaming send: POST /v1/daemons/{ref}/events/stream?client=ID&links=true
// with an NDJSON body, one StreamLine per line, answered by an NDJSON body,
// one StreamAnswer per event in order as results come, then one line with
// End. client makes every event exactly-once under its event_id; links adds
// the outputs' causal links to the answers.

// StreamContentType is the media type of both directions of a stream.
const StreamContentType = "application/x-ndjson"

// maxSafeInt is the largest integer every JSON reader holds exactly (2^53);
// larger event ids must be strings.
const maxSafeInt = 1 << 53

// EventID is an event id in JSON: a decimal string, or a number up to 2^53.
// It is written as a string, so no reader rounds it.
type EventID uint64

func (id EventID) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(id), 10) + `"`), nil
}

func (id *EventID) UnmarshalJSON(b []byte) error {
	s := string(b)
	quoted := len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"'
	if quoted {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return fmt.Errorf("event_id %s is not a decimal id", abbrev(b))
	}
	if !quoted && v > maxSafeInt {
		return fmt.Errorf("event_id %s is above 2^53: give it as a string", abbrev(b))
	}
	*id = EventID(v)
	return nil
}

// StreamLine is one event of a stream request: its payload in exactly one
// of Text (UTF-8 as is), Hex or Base64 (standard, padded); EventID with the
// stream's client id (from 1); Line, when set, is the number its answer
// carries (default: the line's number in this request).
type StreamLine struct {
	// Payload, for a client, is the payload as bytes: it is sent as text
	// when it is plain UTF-8 and as base64 otherwise (see LineOf), without
	// Text or Base64 being filled in.
	Payload []byte  `json:"-"`
	Text    *string `json:"text,omitempty"`
	Hex     *string `json:"hex,omitempty"`
	Base64  *string `json:"base64,omitempty"`
	EventID EventID `json:"event_id,omitempty"`
	Line    int     `json:"line,omitempty"`
}

// StreamAnswer is one line of a stream response: an event's result (Line
// and either the delivery or Error and Code), or, last, End.
type StreamAnswer struct {
	Line    int      `json:"line,omitempty"`
	EventID EventID  `json:"event_id,omitempty"`
	Daemon  string   `json:"daemon,omitempty"`
	Node    string   `json:"node,omitempty"`
	Outputs [][]byte `json:"outputs,omitempty"` // base64 in JSON
	Links   [][]byte `json:"links,omitempty"`
	// Duplicate: the daemon had already applied this client event id.
	Duplicate bool       `json:"duplicate,omitempty"`
	Error     string     `json:"error,omitempty"`
	Code      string     `json:"code,omitempty"`
	End       *StreamEnd `json:"end,omitempty"`
}

// StreamEnd closes a stream response: what the stream did.
type StreamEnd struct {
	Events     int `json:"events"`
	Applied    int `json:"applied"`
	Duplicates int `json:"duplicates"`
	Failed     int `json:"failed"`
	// Stopped says why the node stopped sending: every later event was
	// answered "not sent" (code not_found) and may be sent again, in order.
	Stopped string `json:"stopped,omitempty"`
}

// streamBackend is the part of a backend that serves streams; *node.Node
// has it.
type streamBackend interface {
	OpenStream(ctx context.Context, ref, client string) (*node.Stream, error)
}

var _ streamBackend = (*node.Node)(nil)

// DecodeStreamLine reads one request line (without its newline) as the
// event numbered line; a blank line is skip. A line that cannot be read
// yields an event whose Err says why (with the line number), so it fails
// alone and the stream goes on.
func DecodeStreamLine(b []byte, line int) (ev node.StreamEvent, skip bool) {
	return decodeStreamLine(b, line, nil)
}

// decodeStreamLine is DecodeStreamLine with text payloads copied into keep
// (when set) rather than allocated one by one.
func decodeStreamLine(b []byte, line int, keep *slab.Bytes) (ev node.StreamEvent, skip bool) {
	ev.Line = line
	if len(bytes.TrimSpace(b)) == 0 {
		return ev, true
	}
	if fev, ok := fastStreamLine(b, line, keep); ok {
		return fev, false
	}
	bad := func(format string, a ...any) (node.StreamEvent, bool) {
		ev.Err = fmt.Errorf("%w: line %d: %s", node.ErrBadRequest, line, fmt.Sprintf(format, a...))
		return ev, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l StreamLine
	if err := dec.Decode(&l); err != nil {
		return bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("data after the JSON object")
	}
	if l.Line < 0 {
		return bad("line %d is negative", l.Line)
	}
	if l.Line > 0 {
		ev.Line = l.Line
	}
	ev.EventID = uint64(l.EventID)
	n := 0
	for _, f := range []*string{l.Text, l.Hex, l.Base64} {
		if f != nil {
			n++
		}
	}
	if n != 1 {
		return bad(`give the payload in exactly one of "text", "hex" and "base64"`)
	}
	var err error
	switch {
	case l.Text != nil:
		if !utf8.ValidString(*l.Text) {
			return bad("text is not UTF-8")
		}
		ev.Payload = []byte(*l.Text)
	case l.Hex != nil:
		ev.Payload, err = hex.DecodeString(*l.Hex)
	default:
		ev.Payload, err = base64.StdEncoding.Strict().DecodeString(*l.Base64)
	}
	if err != nil {
		return bad("payload: %v", err)
	}
	if ev.Payload == nil {
		ev.Payload = []byte{}
	}
	return ev, false
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// readStreamLines reads the request body line by line into batches of
// events: lines longer than max fail alone (the rest of such a line is
// skipped), the stream goes on. A batch goes out when it is full or when no
// further whole line is buffered, so a burst costs one handoff and a client
// that sends one line at a time is answered at once. It ends at the body's
// end, a read error, or ctx.
func readStreamLines(ctx context.Context, body io.Reader, max int, events chan<- []node.StreamEvent) {
	defer close(events)
	br := bufio.NewReaderSize(body, 64<<10)
	var buf []byte
	var payloads slab.Bytes
	var batch []node.StreamEvent
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case events <- batch:
			batch = make([]node.StreamEvent, 0, streamBatch)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for line := 1; ; line++ {
		buf = buf[:0]
		long, eof := false, false
		for {
			chunk, err := br.ReadSlice('\n')
			if !long {
				if len(buf)+len(chunk) > max+1 { // +1: the newline
					long, buf = true, buf[:0]
				} else {
					buf = append(buf, chunk...)
				}
			}
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			eof = true
			break
		}
		var ev node.StreamEvent
		skip := false
		switch {
		case long:
			ev = node.StreamEvent{Line: line, Err: fmt.Errorf("%w: line %d is longer than %d bytes", node.ErrTooLarge, line, max)}
		default:
			ev, skip = decodeStreamLine(bytes.TrimSuffix(buf, []byte("\n")), line, &payloads)
		}
		if !skip {
			batch = append(batch, ev)
		}
		if eof {
			flush()
			return
		}
		if len(batch) >= streamBatch || !lineBuffered(br) {
			if !flush() {
				return
			}
		}
	}
}

// streamBatch is how many events the reader hands the stream at once at
// most (the node reads a batch only when its window has room for it all).
const streamBatch = 64

// lineBuffered reports whether a whole line waits in br, so reading it
// does not block.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

func (s *server) sendStream(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.b.(streamBackend)
	if !ok {
		writeErrorCode(w, http.StatusNotImplemented, CodeInternal, "this node does not serve event streams")
		return
	}
	rc := http.NewResponseController(w)
	// Results go out while the request is still coming in; and an error
	// answered before any of it was read must not wait for its end (the
	// server would read a client's endless body to reuse the connection).
	_ = rc.EnableFullDuplex()
	client := r.URL.Query().Get("client")
	// Links (56 bytes each) are as large as small outputs: only on request.
	links := r.URL.Query().Get("links") == "true"
	st, err := sb.OpenStream(r.Context(), r.PathValue("ref"), client)
	if err != nil {
		w.Header().Set("Connection", "close")
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", StreamContentType)
	if !links {
		st.SkipLinks()
	}
	w.Header().Set("X-Wasmesh-Daemon", st.Daemon())
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	events := make(chan []node.StreamEvent, 4)
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		readStreamLines(ctx, r.Body, int(s.opts.MaxEvent), events)
	}()
	out := newAnswerWriter(w, rc)
	sum, err := st.Run(ctx, events, func(res node.StreamResult) error {
		a := StreamAnswer{Line: res.Line, EventID: EventID(res.EventID), Daemon: res.Daemon, Node: res.Node, Outputs: res.Outputs, Duplicate: res.Duplicate}
		if links {
			a.Links = res.Links
		}
		if res.Err != nil {
			_, a.Code = classify(res.Err)
			a.Error = res.Err.Error()
			a.Daemon, a.Node = "", ""
		} else if a.Outputs == nil {
			a.Outputs = [][]byte{}
		}
		return out.write(a, !res.More)
	})
	cancel()
	if err == nil {
		end := StreamEnd{Events: sum.Events, Applied: sum.Applied, Duplicates: sum.Duplicates, Failed: sum.Failed}
		if sum.Stopped != nil {
			end.Stopped = sum.Stopped.Error()
		}
		_ = out.write(StreamAnswer{End: &end}, true)
	}
	// The reader must be done with the body before the handler returns.
	readers.Wait()
}

// answerWriter writes answers, flushing when told (the node says when no
// more results are ready), so a burst costs one flush, not one per line.
type answerWriter struct {
	w   *bufio.Writer
	rc  *http.ResponseController
	enc *json.Encoder
	buf []byte
}

func newAnswerWriter(w http.ResponseWriter, rc *http.ResponseController) *answerWriter {
	bw := bufio.NewWriterSize(w, 32<<10)
	return &answerWriter{w: bw, rc: rc, enc: json.NewEncoder(bw)}
}

func (a *answerWriter) write(v StreamAnswer, flush bool) error {
	if b, ok := appendAnswer(a.buf[:0], v); ok {
		a.buf = append(b, '\n')
		if _, err := a.w.Write(a.buf); err != nil {
			return err
		}
	} else if err := a.enc.Encode(v); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	if err := a.w.Flush(); err != nil {
		return err
	}
	return a.rc.Flush()
}
