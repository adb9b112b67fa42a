package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/slab"
	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

func streamNode(t *testing.T, opts Options) (*node.Node, *Client, string) {
	t.Helper()
	ctx := context.Background()
	n, err := node.New(ctx, node.Config{
		DataDir: t.TempDir(), Name: "a", ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Dev: true, CheckpointInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	srv := httptest.NewServer(Handler(n, opts))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, opts.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Spawn(ctx, node.SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	return n, c, srv.URL
}

// postStream sends body as a stream with curl's defaults and returns the
// answers.
func postStream(t *testing.T, url, token, body string) (int, []StreamAnswer) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", StreamContentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []StreamAnswer
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var a StreamAnswer
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("answer %q: %v", sc.Text(), err)
		}
		out = append(out, a)
	}
	return resp.StatusCode, out
}

// Bad lines fail that event only, with its line number; every other line
// is applied in order; the stream ends with its summary.
func TestStreamBadLinesFailAlone(t *testing.T) {
	_, _, base := streamNode(t, Options{MaxEvent: 64})
	body := strings.Join([]string{
		`{"text":"a"}`,
		`{"text":`,                // 2: bad JSON
		`{"hex":"zz"}`,            // 3: bad hex
		`{"base64":"AP8="}`,       // 4: ok
		`{"text":"a","hex":"00"}`, // 5: two payloads
		`{"text":"a","what":1}`,   // 6: unknown field
		``,                        // 7: blank: skipped
		`{"text":"` + strings.Repeat("x", 100) + `"}`, // 8: over MaxEvent
		`{"text":"a","event_id":"3"}`,                 // 9: an id without a client id
		`{"text":"get"} {"text":"x"}`,                 // 10: two values
		`{"text":"get"}`,                              // 11
	}, "\n")
	status, out := postStream(t, base+"/v1/daemons/c/events/stream", "", body)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	type want struct {
		line int
		out  string // the output, or "" for an error
		code string
	}
	wants := []want{{1, "1", ""}, {2, "", CodeBadRequest}, {3, "", CodeBadRequest}, {4, "2", ""},
		{5, "", CodeBadRequest}, {6, "", CodeBadRequest}, {8, "", CodeTooLarge}, {9, "", CodeBadRequest},
		{10, "", CodeBadRequest}, {11, "2", ""}}
	if len(out) != len(wants)+1 || out[len(out)-1].End == nil {
		t.Fatalf("answers %+v", out)
	}
	for i, w := range wants {
		a := out[i]
		if a.Line != w.line || a.Code != w.code {
			t.Fatalf("answer %d: %+v, want line %d code %q", i, a, w.line, w.code)
		}
		if w.code != "" && !strings.Contains(a.Error, "line "+strconv.Itoa(w.line)) && w.line != 9 {
			t.Fatalf("answer %d: error %q does not name its line", i, a.Error)
		}
		if w.out != "" && (len(a.Outputs) != 1 || string(a.Outputs[0]) != w.out) {
			t.Fatalf("answer %d: outputs %q, want %s", i, a.Outputs, w.out)
		}
	}
	if end := out[len(out)-1].End; end.Events != 10 || end.Applied != 3 || end.Failed != 7 || end.Stopped != "" {
		t.Fatalf("end %+v", end)
	}
}

func TestStreamClientExactlyOnceAndAuth(t *testing.T) {
	ctx := context.Background()
	_, c, base := streamNode(t, Options{Token: "sekrit-token-0123"})
	if status, _ := postStream(t, base+"/v1/daemons/c/events/stream", "", `{"text":"x"}`); status != http.StatusUnauthorized {
		t.Fatalf("no token: status %d", status)
	}
	run := func(client string, ids ...uint64) []StreamAnswer {
		t.Helper()
		lines := make(chan []StreamLine, len(ids))
		for i, id := range ids {
			// One line per batch, and the last two in one batch.
			if i == len(ids)-1 && i > 0 {
				continue
			}
			b := []StreamLine{LineOf([]byte("x"), id, 100+i)}
			if i == len(ids)-2 {
				b = append(b, LineOf([]byte("x"), ids[i+1], 100+i+1))
			}
			lines <- b
		}
		close(lines)
		var got []StreamAnswer
		end, err := c.SendStream(ctx, "c", client, lines, func(a StreamAnswer, _ bool) error { got = append(got, a); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if end.Events != len(ids) {
			t.Fatalf("end %+v", end)
		}
		return got
	}
	got := run("loader", 1, 2, 1<<60)
	if got[0].Line != 100 || string(got[0].Outputs[0]) != "1" || string(got[2].Outputs[0]) != "3" {
		t.Fatalf("first run %+v", got)
	}
	if got[2].EventID != 1<<60 {
		t.Fatalf("answer's event id %d, want %d", got[2].EventID, uint64(1<<60))
	}
	got = run("loader", 2, 1<<60+1)
	if !got[0].Duplicate || len(got[0].Outputs) != 0 || got[1].Duplicate || string(got[1].Outputs[0]) != "4" {
		t.Fatalf("resend %+v", got)
	}
	// Refusals come back while the stream's body is still open.
	if _, err := c.SendStream(ctx, "ghost", "", make(chan []StreamLine), nil); !errors.Is(err, node.ErrDaemonNotFound) {
		t.Fatalf("unknown daemon: %v", err)
	}
	wrong := *c
	wrong.Token = "wrong-token-0123456"
	open := make(chan []StreamLine, 1)
	open <- []StreamLine{LineOf([]byte("x"), 0, 0)}
	if _, err := wrong.SendStream(ctx, "c", "", open, nil); !errors.Is(err, node.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	// A big id as a JSON number is refused (a reader would round it), as a
	// string it is fine.
	_, out := postStream(t, base+"/v1/daemons/c/events/stream?client=other", "sekrit-token-0123",
		`{"text":"x","event_id":9007199254740993}`+"\n"+`{"text":"x","event_id":"9007199254740993"}`)
	if len(out) != 3 || out[0].Code != CodeBadRequest || out[1].Error != "" || string(out[1].Outputs[0]) != "5" {
		t.Fatalf("big ids: %+v", out)
	}
	if len(out[1].Links) != 0 {
		t.Fatalf("links without ?links=true: %+v", out[1])
	}
	// The causal links only on request.
	_, out = postStream(t, base+"/v1/daemons/c/events/stream?links=true", "sekrit-token-0123", `{"text":"x"}`)
	if len(out) != 2 || len(out[0].Links) != 1 || len(out[0].Links[0]) != 56 {
		t.Fatalf("links: %+v", out)
	}
}

// The stream line decoder is fed by clients: it never panics, and what it
// accepts round-trips through LineOf.
func FuzzStreamLine(f *testing.F) {
	for _, s := range []string{`{"text":"a"}`, `{"hex":"00ff","event_id":"7"}`, `{"base64":"AP8=","line":3}`,
		`{"text":"a","event_id":12}`, `{"text":1}`, `{`, `[]`, `{"text":"a"} x`, `{"event_id":"-1","text":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, skip := DecodeStreamLine(b, 5)
		if skip || ev.Err != nil {
			if ev.Err != nil && !errors.Is(ev.Err, node.ErrBadRequest) {
				t.Fatalf("error outside the bad request class: %v", ev.Err)
			}
			return
		}
		line, _ := json.Marshal(LineOf(ev.Payload, ev.EventID, ev.Line))
		again, skip := DecodeStreamLine(line, 5)
		if skip || again.Err != nil || string(again.Payload) != string(ev.Payload) || again.EventID != ev.EventID || again.Line != ev.Line {
			t.Fatalf("%q: decoded %+v, re-encoded %s decodes %+v", b, ev, line, again)
		}
	})
}

// The hand-written fast paths agree with encoding/json: a line the fast
// reader takes decodes to what the strict decoder gives; what the fast
// writers write is what json.Marshal means.
func FuzzStreamFastPaths(f *testing.F) {
	for _, s := range []string{`{"text":"a"}`, `{"text":"a","event_id":"7","line":3}`, `{"hex":"00ff","line":0}`,
		`{"base64":"AP8="}`, `{"text":"","event_id":9007199254740993}`, `{"text":"a","event_id":"07"}`, `{"text":"a"}  `,
		`{"line":3,"daemon":"d","node":"n","outputs":["MQ=="],"links":["AA=="],"duplicate":true}`, `{"line":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var keep slab.Bytes
		if kev, ok := fastStreamLine(b, 5, &keep); ok {
			if fev, _ := fastStreamLine(b, 5, nil); !bytes.Equal(kev.Payload, fev.Payload) {
				t.Fatalf("%q: payload %q kept, %q allocated", b, kev.Payload, fev.Payload)
			}
		}
		if fev, ok := fastStreamLine(b, 5, nil); ok {
			slow := decodeSlow(b, 5)
			if slow.Err != nil || !bytes.Equal(slow.Payload, fev.Payload) || slow.EventID != fev.EventID || slow.Line != fev.Line {
				t.Fatalf("%q: fast %+v, strict %+v", b, fev, slow)
			}
		}
		if a, ok := fastAnswer(b); ok {
			var j StreamAnswer
			if err := json.Unmarshal(b, &j); err != nil || !sameAnswer(a, j) {
				t.Fatalf("%q: fast %+v, json %+v (%v)", b, a, j, err)
			}
			w, ok := appendAnswer(nil, a)
			var back StreamAnswer
			if !ok || json.Unmarshal(w, &back) != nil || !sameAnswer(a, back) {
				t.Fatalf("%q: re-encoded as %s", b, w)
			}
		}
		ev, skip := DecodeStreamLine(b, 5)
		if !skip && ev.Err == nil {
			l := LineOf(ev.Payload, ev.EventID, ev.Line)
			// A line given as bytes is written as LineOf's would be.
			raw := StreamLine{Payload: ev.Payload, EventID: EventID(ev.EventID), Line: ev.Line}
			if raw.Payload == nil {
				raw.Payload = []byte{}
			}
			wr, okRaw := appendStreamLine(nil, raw)
			if w, ok := appendStreamLine(nil, l); ok {
				// The same line to a strict reader (json escapes more).
				back := decodeSlow(w, 5)
				if back.Err != nil || !bytes.Equal(back.Payload, ev.Payload) || back.EventID != ev.EventID || back.Line != ev.Line {
					t.Fatalf("line %+v: written as %s, reads back as %+v", l, w, back)
				}
				if okRaw && !bytes.Equal(w, wr) {
					t.Fatalf("payload %q: written as %s from bytes, %s from LineOf", ev.Payload, wr, w)
				}
			}
			if okRaw {
				back := decodeSlow(wr, 5)
				if back.Err != nil || !bytes.Equal(back.Payload, ev.Payload) || back.EventID != ev.EventID || back.Line != ev.Line {
					t.Fatalf("payload %q: written from bytes as %s, reads back as %+v", ev.Payload, wr, back)
				}
			}
		}
	})
}

// decodeSlow is DecodeStreamLine without its fast path.
func decodeSlow(b []byte, line int) node.StreamEvent {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l StreamLine
	if err := dec.Decode(&l); err != nil {
		return node.StreamEvent{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return node.StreamEvent{Err: errors.New("trailing data")}
	}
	ev := node.StreamEvent{Line: line, EventID: uint64(l.EventID)}
	if l.Line > 0 {
		ev.Line = l.Line
	}
	n := 0
	var err error
	switch {
	case l.Text != nil:
		n++
		ev.Payload = []byte(*l.Text)
	case l.Hex != nil:
		n++
		ev.Payload, err = hex.DecodeString(*l.Hex)
	case l.Base64 != nil:
		n++
		ev.Payload, err = base64.StdEncoding.Strict().DecodeString(*l.Base64)
	}
	if l.Line < 0 || (l.Text != nil && l.Hex != nil) || (l.Text != nil && l.Base64 != nil) || (l.Hex != nil && l.Base64 != nil) {
		err = errors.New("bad")
	}
	if n == 0 && err == nil {
		err = errors.New("no payload")
	}
	ev.Err = err
	return ev
}

func sameAnswer(a, b StreamAnswer) bool {
	eq := func(x, y [][]byte) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a.Line == b.Line && a.EventID == b.EventID && a.Daemon == b.Daemon && a.Node == b.Node &&
		eq(a.Outputs, b.Outputs) && eq(a.Links, b.Links) && a.Duplicate == b.Duplicate && a.Error == b.Error &&
		a.Code == b.Code && (a.End == nil) == (b.End == nil)
}
