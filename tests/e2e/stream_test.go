package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `seq 1 N | wasmesh send c1 --stdin` by name through n1 while `wasmesh
// migrate` moves c1 from n2 to n1 (the streaming node) and back: the
// outputs are exactly 1..N in order (none lost, none applied twice) and the
// sender exits 0.
func TestStreamSendThroughMovesKeepsExactCount(t *testing.T) {
	ps := addrCluster(t, "n1", "n2")
	n1, n2 := ps[0], ps[1]
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", n1.url())
	ok(t, "spawn", "counter", "--name", "c1", "--on", "n2", "--node", n1.url())
	const n = 20000
	s := addrStartStream(t, "c1", n1.url(), n)
	for i, to := range []string{"n1", "n2"} {
		at := int64(n * (i + 1) / 4)
		eventually(t, 60*time.Second, fmt.Sprintf("%d events answered", at), func() (bool, string) {
			return s.seen.Load() >= at, fmt.Sprint(s.seen.Load())
		})
		ok(t, "migrate", "c1", "--to", to, "--node", n2.url())
	}
	if left := n - s.seen.Load(); left == 0 {
		t.Logf("the stream was over before the second move ended; it may have missed the stream")
	}
	lines := s.wait(t)
	if len(lines) != n {
		t.Fatalf("%d outputs for %d events:\n%s", len(lines), n, s.stderr.String())
	}
	for i, l := range lines {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("output %d = %q, want %d (an event lost or applied twice)", i, l, i+1)
		}
	}
	if got := strings.TrimSpace(ok(t, "send", "c1", "get", "--node", n1.url())); got != strconv.Itoa(n) {
		t.Fatalf("count %s, want %d", got, n)
	}
}

// --json prints one object per input line, in order: outputs, or the
// event's own error and code; the exit status is 1 when any failed.
func TestStreamSendJSONOneObjectPerEvent(t *testing.T) {
	ps := addrCluster(t, "n1", "n2")
	n1 := ps[0]
	ok(t, "deploy", repoPath("plugins/examples/testdata/trap.wasm"), "--kind", "trap", "--node", n1.url())
	ok(t, "spawn", "trap", "--name", "t1", "--on", "n2", "--node", n1.url())
	in := strings.Join([]string{hex.EncodeToString([]byte("x")), hex.EncodeToString([]byte("trap")), "zz", hex.EncodeToString([]byte("get"))}, "\n") + "\n"
	r := cli(t, in, "send", "t1", "--stdin", "--json", "--input-format", "hex", "--node", n1.url())
	if r.code != 1 {
		t.Fatalf("want exit 1 (events failed): %s", r)
	}
	type obj struct {
		Event   int      `json:"event"`
		Daemon  string   `json:"daemon"`
		Node    string   `json:"node"`
		Outputs []string `json:"outputs"`
		Error   string   `json:"error"`
		Code    string   `json:"code"`
	}
	var got []obj
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var o obj
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("line %q is not one result object: %v\n%s", l, err, r)
		}
		got = append(got, o)
	}
	want := []obj{
		{Event: 1, Node: "n2", Outputs: []string{"1"}},
		{Event: 2, Code: "event_failed"},
		{Event: 3, Code: "bad_request"},
		{Event: 4, Node: "n2", Outputs: []string{"1"}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d objects for 4 events:\n%s", len(got), r)
	}
	for i, w := range want {
		g := got[i]
		if g.Event != w.Event || g.Code != w.Code || (w.Code == "") != (g.Error == "") || g.Node != w.Node || strings.Join(g.Outputs, ",") != strings.Join(w.Outputs, ",") {
			t.Fatalf("object %d = %+v, want %+v\n%s", i, g, w, r)
		}
	}
}
