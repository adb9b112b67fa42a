package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/node/admin"
)

// breakingNode is a stream endpoint whose first stream applies dropAfter
// events and then breaks (the connection drops before that event's answer)
// and whose later streams run to the end. Exactly-once events (an id under
// ?client=) are applied once per id, like a daemon's horizon.
type breakingNode struct {
	dropAfter int
	mu        sync.Mutex
	streams   int
	applied   []string // payloads, in the order applied
	ids       map[uint64]bool
}

func (b *breakingNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).EnableFullDuplex()
	b.mu.Lock()
	b.streams++
	first := b.streams == 1
	b.mu.Unlock()
	w.Header().Set("Content-Type", admin.StreamContentType)
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	enc := json.NewEncoder(w)
	sc := bufio.NewScanner(r.Body)
	for n := 1; sc.Scan(); n++ {
		ev, _ := admin.DecodeStreamLine(sc.Bytes(), n)
		a := admin.StreamAnswer{Line: ev.Line, Daemon: "c1", Node: "n1"}
		b.mu.Lock()
		if ev.EventID != 0 && b.ids[ev.EventID] {
			a.Duplicate = true
		} else {
			b.ids[ev.EventID] = ev.EventID != 0
			b.applied = append(b.applied, string(ev.Payload))
			a.Outputs = [][]byte{ev.Payload}
		}
		b.mu.Unlock()
		if first && n == b.dropAfter {
			// The node died: the connection drops, no answer, no end.
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
				return
			}
			panic(http.ErrAbortHandler)
		}
		enc.Encode(a)
		http.NewResponseController(w).Flush()
	}
	enc.Encode(admin.StreamAnswer{End: &admin.StreamEnd{}})
}

// A stream that breaks is reopened and goes on with the rest. With a client
// id the event whose answer was lost is resent under its id (the node
// answers "already applied"); without one it is reported as of unknown
// fate, never resent.
func TestSendStreamBreaksAndGoesOn(t *testing.T) {
	for _, client := range []string{"loader", ""} {
		bn := &breakingNode{dropAfter: 3, ids: map[uint64]bool{}}
		srv := httptest.NewServer(bn)
		args := []string{"send", "c1", "--stdin", "--window", "1", "--node", srv.URL}
		if client != "" {
			args = append(args, "--client-id", client)
		}
		r := wm(t, "1\n2\n3\n4\n5\n", args...)
		srv.Close()
		if r.stdout != "1\n2\n4\n5\n" || bn.streams != 2 {
			t.Fatalf("client %q: %+v after %d streams", client, r, bn.streams)
		}
		if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(bn.applied, want) {
			t.Fatalf("client %q: applied %q, want each once: %q", client, bn.applied, want)
		}
		if client != "" {
			if r.code != 0 || !strings.Contains(r.stderr, "event 3: already applied") {
				t.Fatalf("client %q: %+v", client, r)
			}
		} else if r.code != 1 || !strings.Contains(r.stderr, "error: event 3: no answer") || !strings.Contains(r.stderr, "1 event(s) failed") {
			t.Fatalf("no client id: %+v", r)
		}
	}
}

// --json prints one object per event in input order, a line the CLI could
// not decode included.
func TestSendStreamJSON(t *testing.T) {
	sn := &scriptedNode{script: map[string][]admin.Error{"3": {{Code: admin.CodeEventFailed, Message: "node: event failed: trap"}}}}
	srv := httptest.NewServer(sn)
	defer srv.Close()
	r := wm(t, "31\nzz\n33\n34\n", "send", "c1", "--stdin", "--json", "--input-format", "hex", "--node", srv.URL)
	want := `{"event":1,"daemon":"c1","outputs":["1"]}
{"event":2,"error":"payload: bad format: not hex: encoding/hex: invalid byte: U+007A 'z'","code":"bad_request"}
{"event":3,"error":"node: event failed: trap","code":"event_failed"}
{"event":4,"daemon":"c1","outputs":["4"]}
`
	if r.code != 1 || r.stdout != want {
		t.Fatalf("%+v\nwant stdout:\n%s", r, want)
	}
	if r := wm(t, "", "send", "c1", "x", "--json", "--node", srv.URL); r.code != 2 || !strings.Contains(r.stderr, "--json needs --stdin") {
		t.Fatalf("--json without --stdin: %+v", r)
	}
}
