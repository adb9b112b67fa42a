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

// scriptedNode answers sends from a script keyed by payload: each payload's
// queue of answers is consumed in order (an exhausted queue answers 200
// with the payload as output). It records every payload it received.
type scriptedNode struct {
	mu     sync.Mutex
	script map[string][]admin.Error // Code "" means success
	got    []string
}

func (s *scriptedNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/events/stream") {
		s.serveStream(w, r)
		return
	}
	var req admin.SendRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := string(req.Payload)
	s.mu.Lock()
	s.got = append(s.got, p)
	var ans admin.Error
	if q := s.script[p]; len(q) > 0 {
		ans, s.script[p] = q[0], q[1:]
	}
	s.mu.Unlock()
	status := map[string]int{"": 200, admin.CodeNotFound: 404, admin.CodeInternal: 500, admin.CodeAmbiguous: 409}[ans.Code]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == 200 {
		json.NewEncoder(w).Encode(admin.SendResponse{Daemon: "c1", Outputs: [][]byte{req.Payload}})
		return
	}
	json.NewEncoder(w).Encode(ans)
}

// serveStream is the stream endpoint under the same script, with the real
// node's rule: after an event it did not deliver it sends nothing more and
// answers the rest "not sent" (not recorded).
func (s *scriptedNode) serveStream(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Content-Type", admin.StreamContentType)
	enc := json.NewEncoder(w)
	sc := bufio.NewScanner(r.Body)
	stopped := false
	for n := 1; sc.Scan(); n++ {
		ev, _ := admin.DecodeStreamLine(sc.Bytes(), n)
		p := string(ev.Payload)
		a := admin.StreamAnswer{Line: ev.Line}
		if stopped {
			a.Code, a.Error = admin.CodeNotFound, "node: daemon not found: event not sent: the stream stopped before it"
		} else {
			s.mu.Lock()
			s.got = append(s.got, p)
			var ans admin.Error
			if q := s.script[p]; len(q) > 0 {
				ans, s.script[p] = q[0], q[1:]
			}
			s.mu.Unlock()
			if ans.Code == "" {
				a.Daemon, a.Outputs = "c1", [][]byte{ev.Payload}
			} else {
				a.Code, a.Error = ans.Code, ans.Message
				stopped = ans.Code == admin.CodeNotFound
			}
		}
		enc.Encode(a)
		http.NewResponseController(w).Flush()
	}
	enc.Encode(admin.StreamAnswer{End: &admin.StreamEnd{}})
}

var notFound = admin.Error{Code: admin.CodeNotFound, Message: `node: daemon not found: "c1" is not on any of the 2 alive node(s)`}

// An event the node says it did not deliver is sent again; an event whose
// fate is unknown is reported and never resent; the stream goes on.
func TestSendResendsOnlyUndelivered(t *testing.T) {
	sn := &scriptedNode{script: map[string][]admin.Error{
		"2": {notFound, notFound},
		"3": {{Code: admin.CodeInternal, Message: "deliver to c1: migration aborted while the event was in flight; it may not have been applied"}},
	}}
	srv := httptest.NewServer(sn)
	defer srv.Close()
	r := wm(t, "1\n2\n3\n4\n", "send", "c1", "--stdin", "--node", srv.URL)
	if r.code != 1 || r.stdout != "1\n2\n4\n" || !strings.Contains(r.stderr, "error: event 3: ") || !strings.Contains(r.stderr, "1 event(s) failed") {
		t.Fatalf("%+v", r)
	}
	if want := []string{"1", "2", "2", "2", "3", "4"}; !slices.Equal(sn.got, want) {
		t.Fatalf("node received %q, want %q", sn.got, want)
	}
}

// A daemon this stream never reached fails at once: no waiting out the
// retry window for a typo.
func TestSendUnknownDaemonFailsAtOnce(t *testing.T) {
	sn := &scriptedNode{script: map[string][]admin.Error{"1": {notFound}}}
	srv := httptest.NewServer(sn)
	defer srv.Close()
	r := wm(t, "1\n2\n", "send", "c1", "--stdin", "--node", srv.URL)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "daemon not found") || len(sn.got) != 1 {
		t.Fatalf("%+v, node got %q", r, sn.got)
	}
}

// The retry window is bounded: a daemon gone for good ends the stream.
func TestSendRetryIsBounded(t *testing.T) {
	sn := &scriptedNode{script: map[string][]admin.Error{"2": slices.Repeat([]admin.Error{notFound}, 1000)}}
	srv := httptest.NewServer(sn)
	defer srv.Close()
	r := wm(t, "1\n2\n3\n", "send", "c1", "--stdin", "--retry-for", "100ms", "--node", srv.URL)
	if r.code != 1 || r.stdout != "1\n" || !strings.Contains(r.stderr, "daemon not found") || slices.Contains(sn.got, "3") {
		t.Fatalf("%+v, node got %q", r, sn.got)
	}
}

func TestAddressingVerbsHelp(t *testing.T) {
	for _, args := range [][]string{{"expect", "--help"}, {"restore", "--help"}, {"migrate", "--help"}, {"spawn", "--help"}} {
		r := wm(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := wm(t, "", "expect", "--node", "http://127.0.0.1:1"); r.code != 2 || !strings.Contains(r.stderr, "needs a DAEMON or --key") {
		t.Errorf("expect without arguments: %+v", r)
	}
	if r := wm(t, "", "migrate", "c1", "--require", "x", "--key", "k", "--node", "http://127.0.0.1:1"); r.code != 2 {
		t.Errorf("migrate --key without --to: %+v", r)
	}
}
