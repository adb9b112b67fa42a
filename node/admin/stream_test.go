package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

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
		lines := make(chan StreamLine, len(ids))
		for i, id := range ids {
			lines <- LineOf([]byte("x"), id, 100+i)
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
	got = run("loader", 2, 1<<60+1)
	if !got[0].Duplicate || len(got[0].Outputs) != 0 || got[1].Duplicate || string(got[1].Outputs[0]) != "4" {
		t.Fatalf("resend %+v", got)
	}
	if _, err := c.SendStream(ctx, "ghost", "", make(chan StreamLine), nil); !errors.Is(err, node.ErrDaemonNotFound) {
		t.Fatalf("unknown daemon: %v", err)
	}
	// A big id as a JSON number is refused (a reader would round it), as a
	// string it is fine.
	_, out := postStream(t, base+"/v1/daemons/c/events/stream?client=other", "sekrit-token-0123",
		`{"text":"x","event_id":9007199254740993}`+"\n"+`{"text":"x","event_id":"9007199254740993"}`)
	if len(out) != 3 || out[0].Code != CodeBadRequest || out[1].Error != "" || string(out[1].Outputs[0]) != "5" {
		t.Fatalf("big ids: %+v", out)
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
