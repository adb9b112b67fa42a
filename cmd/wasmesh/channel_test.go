package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// chanNode is a node's channel API behind the real admin handler: channel
// "news" (open) and "pay" (restricted) homed on n2, daemon c1, and a
// record of every request. Publishing to "full", or the request number
// failAt, fails with channel_full.
type chanNode struct {
	admin.Backend // the rest of the API: not used here

	mu        sync.Mutex
	defs      []node.ChannelDef
	publishes []node.PublishRequest
	subs      []node.SubscriptionInfo
	tokens    []string // tokens of subscribes
	seq       uint64
	seen      map[string]uint64 // client: highest id accepted
	failAt    int               // 1-based publish request to fail; 0: none
}

func (n *chanNode) CreateChannel(_ context.Context, def node.ChannelDef) (node.ChannelInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if def.Name == "news" && def.Restricted {
		return node.ChannelInfo{}, fmt.Errorf("%w: news is open", node.ErrChannelExists)
	}
	n.defs = append(n.defs, def)
	return node.ChannelInfo{Name: def.Name, Home: "n2", Restricted: def.Restricted, Trusted: def.Trusted}, nil
}

func (n *chanNode) Channels(context.Context) ([]node.ChannelInfo, error) {
	return []node.ChannelInfo{
		{Name: "news", Home: "n2", Seq: 9, Published: 9, Delivered: 15, Full: 1, Subscribers: []node.ChannelSubscriber{
			{Daemon: "00000000000000aa", Node: "n1", Queued: 2, InFlight: 1}, {Daemon: "00000000000000bb", Node: "n3", Queued: 1}}},
		{Name: "pay", Home: "n1", Restricted: true, Trusted: []string{strings.Repeat("ab", 32)}},
	}, nil
}

func (n *chanNode) Subscribe(_ context.Context, ref, ch string, tok []byte) (node.SubscriptionInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ref != "c1" {
		return node.SubscriptionInfo{}, fmt.Errorf("%w: %q", node.ErrDaemonNotFound, ref)
	}
	if ch == "pay" && tok == nil {
		return node.SubscriptionInfo{}, fmt.Errorf("%w: pay needs a token", node.ErrNotPermitted)
	}
	n.tokens = append(n.tokens, string(tok))
	s := node.SubscriptionInfo{Channel: ch, Daemon: "00000000000000aa", Sub: "4", Token: tok != nil}
	n.subs = append(n.subs, s)
	return s, nil
}

func (n *chanNode) Unsubscribe(_ context.Context, ref, ch string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.subs, func(s node.SubscriptionInfo) bool { return s.Channel == ch })
	if i < 0 {
		return fmt.Errorf("%w: %s", node.ErrNotSubscribed, ch)
	}
	n.subs = slices.Delete(n.subs, i, i+1)
	return nil
}

func (n *chanNode) Subscriptions(_ context.Context, ref string) ([]node.SubscriptionInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.subs), nil
}

func (n *chanNode) Publish(_ context.Context, req node.PublishRequest) (node.PublishResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.publishes = append(n.publishes, req)
	if req.Channel == "full" || len(n.publishes) == n.failAt {
		return node.PublishResult{}, fmt.Errorf("%w: a subscriber's queue stayed full", node.ErrChannelFull)
	}
	res := node.PublishResult{Channel: req.Channel, Home: "n2"}
	for i := range req.Payloads {
		if req.Client != "" {
			if n.seen == nil {
				n.seen = map[string]uint64{}
			}
			if id := req.FirstID + uint64(i); id <= n.seen[req.Client] {
				res.Duplicates++
				continue
			} else {
				n.seen[req.Client] = id
			}
		}
		n.seq++
		if res.FirstSeq == 0 {
			res.FirstSeq = n.seq
		}
		res.LastSeq = n.seq
		res.Accepted++
	}
	return res, nil
}

func chanServe(t *testing.T) (*chanNode, string) {
	t.Helper()
	n := &chanNode{}
	srv := httptest.NewServer(admin.Handler(n, admin.Options{}))
	t.Cleanup(srv.Close)
	return n, srv.URL
}

func oneLine(r result) bool { return strings.Count(strings.TrimSpace(r.stderr), "\n") == 0 }

func TestChannelVerbsHelpTeaches(t *testing.T) {
	for _, verb := range [][]string{{"channel", "create"}, {"channel", "ls"}, {"publish"}, {"subscribe"}, {"unsubscribe"}, {"subscriptions"}} {
		r := wm(t, "", append(verb, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--node URL") {
			t.Errorf("%v --help: %+v", verb, r)
		}
	}
	if r := wm(t, "", "channel", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "create") {
		t.Errorf("channel --help: %+v", r)
	}
}

// These are refused before any node is contacted (--node points nowhere).
func TestChannelVerbsRefuseBadUsage(t *testing.T) {
	dir := t.TempDir()
	notTok := filepath.Join(dir, "not.tok")
	os.WriteFile(notTok, []byte("wasmesh-key-v1:AAAA\n"), 0o600)
	hex64 := strings.Repeat("0f", 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"channel", "create"}, "exactly one NAME"},
		{[]string{"channel", "create", "Orders/EU"}, "bad channel name"},
		{[]string{"channel", "create", "orders//eu"}, "bad channel name"},
		{[]string{"channel", "create", "pay", "--restricted"}, "at least one --trust"},
		{[]string{"channel", "create", "pay", "--trust", hex64}, "add --restricted"},
		{[]string{"channel", "create", "pay", "--restricted", "--trust", "/nonexistent.key"}, "neither a 64-hex"},
		{[]string{"channel", "create", "pay", "--bogus"}, "bogus"},
		{[]string{"channel", "ls", "extra"}, "no arguments"},
		{[]string{"publish"}, "needs a CHANNEL"},
		{[]string{"publish", "news"}, "nothing to publish"},
		{[]string{"publish", "News", "a"}, "bad channel name"},
		{[]string{"publish", "news", "a", "--stdin"}, "not both"},
		{[]string{"publish", "news", "a", "zz", "--input-format", "hex"}, "payload 1"},
		{[]string{"publish", "news", "a", "--input-format", "rot13"}, "--input-format"},
		{[]string{"publish", "news", "a", "--first-id", "3"}, "--first-id needs --client"},
		{[]string{"publish", "news", "a", "--client", "p", "--first-id", "0"}, "start at 1"},
		{[]string{"publish", "news", "a", "--timeout", "0s"}, "--timeout"},
		{[]string{"publish", "news", "a", "--token", "/nonexistent.tok"}, "--token"},
		{[]string{"publish", "news", "a", "--token", notTok}, "not a permission token"},
		{[]string{"subscribe", "c1"}, "a DAEMON and a CHANNEL"},
		{[]string{"subscribe", "c1", "news", "--token", notTok}, "not a permission token"},
		{[]string{"unsubscribe", "c1", "a b"}, "bad channel name"},
		{[]string{"subscriptions"}, "exactly one DAEMON"},
	} {
		r := wm(t, "", append(tc.args, "--node", "http://127.0.0.1:1")...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || !oneLine(r) || r.stdout != "" {
			t.Errorf("%v: want exit 2 and one line with %q, got %+v", tc.args, tc.want, r)
		}
	}
}

func TestChannelCreateAndList(t *testing.T) {
	n, url := chanServe(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "ops.key")
	pub := keygen(t, key)

	r := wm(t, "", "channel", "create", "orders/eu", "--node", url)
	if r.code != 0 || r.stdout != "channel orders/eu created, home n2 (open)\n" {
		t.Fatalf("create open: %+v", r)
	}
	other := strings.Repeat("0f", 32)
	r = wm(t, "", "channel", "create", "pay", "--restricted", "--trust", key, "--trust", other, "--node", url)
	if r.code != 0 || r.stdout != "channel pay created, home n2 (restricted, 2 trusted issuers)\n" {
		t.Fatalf("create restricted: %+v", r)
	}
	// The key file's public key is sent, never the file.
	if got := n.defs[1]; !got.Restricted || !slices.Equal(got.Trusted, []string{pub, other}) {
		t.Fatalf("definition reached the node as %+v, want trusted [%s %s]", got, pub, other)
	}
	r = wm(t, "", "channel", "create", "news", "--restricted", "--trust", other, "--node", url)
	if r.code != 1 || !strings.Contains(r.stderr, "news is open") || !oneLine(r) {
		t.Fatalf("create over another definition: %+v", r)
	}

	r = wm(t, "", "channel", "ls", "--node", url)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME HOME SUBSCRIBERS PUBLISHED DELIVERED QUEUED FULL" {
		t.Fatalf("ls: %+v", r)
	}
	// QUEUED is the sum of the subscribers' queues.
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "news n2 2 9 15 3 1" {
		t.Fatalf("ls row %q", got)
	}
	r = wm(t, "", "channel", "ls", "--json", "--node", url)
	var cs []admin.ChannelInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &cs) != nil || len(cs) != 2 || len(cs[0].Subscribers) != 2 || cs[0].Subscribers[0].InFlight != 1 || !cs[1].Restricted {
		t.Fatalf("ls --json: %+v", r)
	}
	var raw []map[string]any
	if json.Unmarshal([]byte(r.stdout), &raw) != nil || raw[0]["full"] != 1.0 || raw[0]["stream"] == nil {
		t.Fatalf("ls --json fields: %s", r.stdout)
	}
}

func TestSubscribeVerbs(t *testing.T) {
	n, url := chanServe(t)
	dir := t.TempDir()
	at := func(s string) string { return filepath.Join(dir, s) }
	keygen(t, at("ops.key"))
	sub := keygen(t, at("c1.key"))
	r := wm(t, "", "token", "issue", "--key", at("ops.key"), "--subject", sub, "--scope", "subscribe", "--channel", "pay", "-o", at("c1.tok"))
	if r.code != 0 {
		t.Fatalf("issue: %+v", r)
	}
	text, _ := os.ReadFile(at("c1.tok"))

	r = wm(t, "", "subscribe", "c1", "pay", "--node", url)
	if r.code != 2 || !strings.Contains(r.stderr, "pay needs a token") || !oneLine(r) {
		t.Fatalf("subscribe without a token: %+v (not_permitted is exit 2)", r)
	}
	r = wm(t, "", "subscribe", "c1", "pay", "--token", at("c1.tok"), "--node", url)
	if r.code != 0 || r.stdout != "subscribed 00000000000000aa to pay (sub 4, with a token)\n" {
		t.Fatalf("subscribe: %+v", r)
	}
	// Sent as the file has it, the final newline trimmed.
	if len(n.tokens) != 1 || n.tokens[0] != strings.TrimSpace(string(text)) || !strings.HasPrefix(n.tokens[0], "wasmesh-token-v1:") {
		t.Fatalf("token reached the node as %q", n.tokens)
	}
	if r = wm(t, "", "subscribe", "c1", "orders/eu", "--node", url); r.code != 0 {
		t.Fatalf("subscribe open: %+v", r)
	}
	if r = wm(t, "", "subscribe", "ghost", "news", "--node", url); r.code == 0 || !oneLine(r) || !strings.Contains(r.stderr, "ghost") {
		t.Fatalf("subscribe of an unknown daemon: %+v", r)
	}

	r = wm(t, "", "subscriptions", "c1", "--node", url)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[2]), " ") != "orders/eu 00000000000000aa 4 no" {
		t.Fatalf("subscriptions: %+v", r)
	}
	r = wm(t, "", "subscriptions", "c1", "--json", "--node", url)
	var subs []admin.SubscriptionInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &subs) != nil || len(subs) != 2 || !subs[0].Token || subs[1].Channel != "orders/eu" {
		t.Fatalf("subscriptions --json: %+v", r)
	}

	// The channel's '/' survives the DELETE path.
	if r = wm(t, "", "unsubscribe", "c1", "orders/eu", "--node", url); r.code != 0 || r.stdout != "unsubscribed c1 from orders/eu\n" {
		t.Fatalf("unsubscribe: %+v", r)
	}
	if r = wm(t, "", "unsubscribe", "c1", "orders/eu", "--node", url); r.code != 1 || !strings.Contains(r.stderr, "not subscribed") || !oneLine(r) {
		t.Fatalf("unsubscribe again: %+v", r)
	}
	r = wm(t, "", "subscriptions", "c1", "--json", "--node", url)
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &subs) != nil || len(subs) != 1 || subs[0].Channel != "pay" {
		t.Fatalf("after unsubscribe: %+v", r)
	}
}

func TestPublishArgs(t *testing.T) {
	n, url := chanServe(t)
	r := wm(t, "", "publish", "news", "hello", "00ff", "--node", url, "--timeout", "1500ms")
	if r.code != 0 || r.stdout != "published 2 to news (home n2, seq 1..2)\n" || r.stderr != "" {
		t.Fatalf("publish: %+v", r)
	}
	got := n.publishes[0]
	if len(got.Payloads) != 2 || string(got.Payloads[1]) != "00ff" || got.Client != "" || got.FirstID != 0 || got.Timeout.Milliseconds() != 1500 || got.Token != nil {
		t.Fatalf("publish reached the node as %+v", got)
	}
	r = wm(t, "", "publish", "news", "00ff", "--input-format", "hex", "--client", "p1", "--first-id", "7", "--node", url)
	if r.code != 0 || r.stdout != "published 1 to news (home n2, seq 3..3)\n" {
		t.Fatalf("publish hex: %+v", r)
	}
	if got := n.publishes[1]; string(got.Payloads[0]) != "\x00\xff" || got.Client != "p1" || got.FirstID != 7 {
		t.Fatalf("publish reached the node as %+v", got)
	}
	// A rerun under the same client: duplicates, published again nowhere.
	r = wm(t, "", "publish", "news", "00ff", "01", "--input-format", "hex", "--client", "p1", "--first-id", "7", "--node", url)
	if r.code != 0 || r.stdout != "published 1 to news (home n2, seq 4..4), 1 duplicate (already published under this client)\n" {
		t.Fatalf("rerun: %+v", r)
	}
	r = wm(t, "", "publish", "full", "x", "--node", url)
	if r.code != 1 || !strings.Contains(r.stderr, "channel full") || !oneLine(r) || r.stdout != "" {
		t.Fatalf("full channel: %+v", r)
	}
}

func TestPublishStdinBatchesInOrder(t *testing.T) {
	n, url := chanServe(t)
	var in strings.Builder
	for i := range 25_000 {
		fmt.Fprintf(&in, "m%d\n", i)
	}
	r := wm(t, in.String(), "publish", "news", "--stdin", "--client", "loader", "--first-id", "100", "--node", url)
	if r.code != 0 || r.stdout != "published 25000 to news (home n2, seq 1..25000)\n" {
		t.Fatalf("publish --stdin: %+v", r)
	}
	// stderr is not a terminal here: no progress.
	if r.stderr != "" {
		t.Fatalf("progress outside a terminal: %q", r.stderr)
	}
	if len(n.publishes) != 3 {
		t.Fatalf("%d requests, want 3", len(n.publishes))
	}
	next := 0
	for i, p := range n.publishes {
		want := []int{10_000, 10_000, 5_000}[i]
		if len(p.Payloads) != want || p.FirstID != uint64(100+next) || p.Client != "loader" {
			t.Fatalf("request %d: %d payloads from id %d, want %d from %d", i, len(p.Payloads), p.FirstID, want, 100+next)
		}
		for j, b := range p.Payloads {
			if string(b) != "m"+strconv.Itoa(next+j) {
				t.Fatalf("request %d payload %d is %q, want m%d", i, j, b, next+j)
			}
		}
		next += len(p.Payloads)
	}
}

func TestPublishStdinStopsAtFailure(t *testing.T) {
	n, url := chanServe(t)
	n.failAt = 2
	in := strings.Repeat("x\n", 25_000)
	r := wm(t, in, "publish", "news", "--stdin", "--node", url)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "before the failure: published 10000 to news (home n2, seq 1..10000)") || !strings.Contains(r.stderr, "channel full") {
		t.Fatalf("failing second request: %+v", r)
	}
	if len(n.publishes) != 2 {
		t.Fatalf("%d requests after a failure, want 2 (none after it)", len(n.publishes))
	}

	// A line that does not decode stops the publish; the batch it is in is
	// never sent.
	n, url = chanServe(t)
	r = wm(t, "00\n01\nzz\n02\n", "publish", "news", "--stdin", "--input-format", "hex", "--node", url)
	if r.code != 2 || !strings.Contains(r.stderr, "line 3") || !oneLine(r) || len(n.publishes) != 0 {
		t.Fatalf("bad line: %+v, %d requests", r, len(n.publishes))
	}
	r = wm(t, "", "publish", "news", "--stdin", "--node", url)
	if r.code != 2 || !strings.Contains(r.stderr, "empty") || len(n.publishes) != 0 {
		t.Fatalf("empty stdin: %+v", r)
	}
	// Blank lines are messages (empty payloads), as in send --stdin.
	r = wm(t, "a\n\nb\r\n", "publish", "news", "--stdin", "--node", url)
	if r.code != 0 || len(n.publishes) != 1 || len(n.publishes[0].Payloads) != 3 || string(n.publishes[0].Payloads[2]) != "b" || len(n.publishes[0].Payloads[1]) != 0 {
		t.Fatalf("blank and CRLF lines: %+v %+v", r, n.publishes)
	}
}
