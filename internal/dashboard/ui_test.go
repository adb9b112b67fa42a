package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// src is a cluster of two nodes and one daemon whose count grows by 10
// per listing, with one migration in progress.
type src struct {
	mu    sync.Mutex
	count uint64
}

func (s *src) Nodes() []node.NodeInfo {
	return []node.NodeInfo{
		{Name: "alpha", ID: "a1", State: "alive", Tags: []string{"zone=x"}, Local: true},
		{Name: "beta", ID: "b1", State: "draining", Tags: []string{}},
	}
}

func (s *src) Daemons(context.Context) ([]node.DaemonInfo, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count += 10
	return []node.DaemonInfo{{ID: "00000000000000aa", Name: "c1", Node: "alpha", Kind: "counter", EventsProcessed: s.count, MemoryBytes: 65536}}, nil
}

func (s *src) Activity() node.Activity {
	return node.Activity{Migrations: []node.MigrationActivity{{Daemon: "00000000000000aa", From: "alpha", To: "beta", MigrateProgress: node.MigrateProgress{Phase: "transfer", BytesSent: 5, BytesTotal: 10}}}}
}

func TestEventsStreamsStateWithRates(t *testing.T) {
	srv := httptest.NewServer(Events(&src{}, EventsOptions{Interval: 40 * time.Millisecond}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var states []State
	for len(states) < 2 && sc.Scan() {
		line := sc.Text()
		if line == "event: state" || line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected line %q", line)
		}
		var st State
		if err := json.Unmarshal([]byte(data), &st); err != nil {
			t.Fatalf("data %q: %v", data, err)
		}
		states = append(states, st)
	}
	if len(states) < 2 {
		t.Fatalf("got %d states: %v", len(states), sc.Err())
	}
	first, second := states[0], states[1]
	if first.Node != "alpha" || len(first.Members) != 2 || !first.Members[1].Draining || first.Members[0].Draining {
		t.Fatalf("members: %+v (node %q)", first.Members, first.Node)
	}
	if d := first.Daemons[0]; d.EventsPerSec != 0 || d.Status != node.StatusRunning || d.Kind != "counter" {
		t.Fatalf("first daemon row: %+v", d)
	}
	if d := second.Daemons[0]; d.EventsPerSec <= 0 || d.EventsProcessed != 20 {
		t.Fatalf("second daemon row has no rate: %+v", d)
	}
	if m := second.Activity.Migrations; len(m) != 1 || m[0].Phase != "transfer" || m[0].BytesTotal != 10 {
		t.Fatalf("activity: %+v", second.Activity)
	}
}

func TestEventsCapsStreams(t *testing.T) {
	h := Events(&src{}, EventsOptions{MaxStreams: 1, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := &flushRecorder{ResponseRecorder: httptest.NewRecorder(), wrote: started}
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	}()
	<-started
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("second stream: %d %s", w.Code, w.Body)
	}
	cancel()
	<-done
}

// flushRecorder signals its first flush (the stream's first message).
type flushRecorder struct {
	*httptest.ResponseRecorder
	wrote chan struct{}
	once  sync.Once
}

func (f *flushRecorder) Flush() { f.once.Do(func() { close(f.wrote) }) }

func TestPageAndAssets(t *testing.T) {
	w := httptest.NewRecorder()
	Page().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `src="/ui/app.js"`) {
		t.Fatalf("page: %d %.200s", w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	for path, ctype := range map[string]string{"/ui/app.js": "javascript", "/ui/style.css": "text/css"} {
		w := httptest.NewRecorder()
		Assets("/ui/").ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), ctype) {
			t.Fatalf("%s: %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	w = httptest.NewRecorder()
	Assets("/ui/").ServeHTTP(w, httptest.NewRequest("GET", "/ui/nope.js", nil))
	if w.Code != 404 {
		t.Fatalf("missing asset: %d", w.Code)
	}
}
