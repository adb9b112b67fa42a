package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

// logBuf collects a node's logs and prints them only if the test fails, so
// memberlist goroutines that outlive a test never call t.Log late.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type nodeOpts struct {
	key    []byte
	seeds  []string
	caps   string
	mig    bool
	verify func(ctx context.Context, m Member) error
}

func startNode(t *testing.T, id string, o nodeOpts) *Membership {
	t.Helper()
	m, err := tryStart(t, id, o)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return m
}

func tryStart(t *testing.T, id string, o nodeOpts) (*Membership, error) {
	t.Helper()
	logs := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s:\n%s", id, logs.String())
		}
	})
	if o.key == nil {
		o.key = testKey
	}
	caps, err := ParseCapabilities(o.caps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Join(ctx, Config{
		BindAddr:  "127.0.0.1",
		SecretKey: o.key,
		Meta: NodeMeta{
			NodeID:             id,
			QUICAddr:           "127.0.0.1:4433",
			X25519Public:       bytes.Repeat([]byte{1}, 32),
			X25519Signature:    bytes.Repeat([]byte{2}, 64),
			Capabilities:       caps,
			MigrationSupported: o.mig,
			Version:            "test",
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Seeds:  o.seeds,
		Timing: FastTiming(),
		Verify: o.verify,
	})
	if err == nil {
		t.Cleanup(func() { _ = m.Shutdown() })
	}
	return m, err
}

func seedOf(m *Membership) []string { return []string{m.LocalAddr().String()} }

// waitFor polls cond until it holds or the bound passes; the bound is a
// failure threshold, not a sleep the test relies on.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(bound)
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s; last state: %s", bound, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memberState(m *Membership, name string) (Member, bool) {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem, true
		}
	}
	return Member{}, false
}

func describe(ms []Member) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s:%s(load=%d,err=%v)", m.Name, m.State, m.Meta.Load, m.MetaErr))
	}
	return strings.Join(parts, " ")
}

func aliveNames(m *Membership) []string {
	var out []string
	for _, mem := range m.Members() {
		if mem.State == StateAlive {
			out = append(out, mem.Name)
		}
	}
	return out
}

// startThree starts a, b, c with b and c joining through a.
func startThree(t *testing.T) (a, b, c *Membership) {
	t.Helper()
	a = startNode(t, "node-a", nodeOpts{caps: "zone=eu-1", mig: true})
	b = startNode(t, "node-b", nodeOpts{seeds: seedOf(a), caps: "gpu,zone=eu-1,memory_gb=64", mig: true})
	c = startNode(t, "node-c", nodeOpts{seeds: seedOf(a), caps: "zone=us-1"})
	all := []string{"node-a", "node-b", "node-c"}
	for _, m := range []*Membership{a, b, c} {
		waitFor(t, 5*time.Second, m.Name()+" sees all three alive", func() (bool, string) {
			return slices.Equal(aliveNames(m), all), describe(m.Members())
		})
	}
	return a, b, c
}

func TestMembershipJoinAndMeta(t *testing.T) {
	a, b, c := startThree(t)
	for _, m := range []*Membership{a, b, c} {
		view := m.Members()
		for _, mem := range view {
			if mem.MetaErr != nil {
				t.Fatalf("%s sees %s with meta error %v", m.Name(), mem.Name, mem.MetaErr)
			}
			if mem.NodeID != mem.Name || mem.Meta.QUICAddr != "127.0.0.1:4433" || len(mem.Meta.X25519Public) != 32 || mem.Meta.Version != "test" {
				t.Errorf("%s sees %s with meta %+v", m.Name(), mem.Name, mem.Meta)
			}
			if mem.Local != (mem.Name == m.Name()) {
				t.Errorf("%s: Local flag wrong for %s", m.Name(), mem.Name)
			}
			if !mem.Addr.IsValid() || mem.Addr.Port() == 0 {
				t.Errorf("%s sees %s with gossip addr %v", m.Name(), mem.Name, mem.Addr)
			}
		}
		got, ok := m.MemberByNodeID("node-b")
		if !ok || !got.Meta.Capabilities.Has("gpu") || got.Meta.Capabilities.Values["memory_gb"] != "64" {
			t.Errorf("%s: MemberByNodeID(node-b) = %+v, %v", m.Name(), got, ok)
		}
		if _, ok := m.MemberByNodeID("node-z"); ok {
			t.Errorf("%s: unknown node id found", m.Name())
		}
	}

	// Placement from a live view: only b has a gpu; from c's point of view
	// the eu-1 nodes are a and b, both load 0, so a wins the tie.
	if id, err := Schedule(mustFilter(t, "gpu"), c.Candidates(), c.NodeID()); err != nil || id != "node-b" {
		t.Errorf("Schedule(gpu) = %q, %v", id, err)
	}
	if id, err := Schedule(mustFilter(t, "zone=eu-1"), c.Candidates(), c.NodeID()); err != nil || id != "node-a" {
		t.Errorf("Schedule(zone=eu-1) = %q, %v", id, err)
	}
	if id, err := MigrationTarget(Filter{}, a.Candidates(), "node-a"); err != nil || id != "node-b" {
		t.Errorf("MigrationTarget = %q, %v (c has no migration support)", id, err)
	}
}

func TestMembershipMetaUpdatePropagates(t *testing.T) {
	a, b, c := startThree(t)
	events := a.Subscribe(t.Context())

	meta := b.LocalMember().Meta
	meta.Load = 7
	meta.Capabilities = mustCaps(t, "gpu,zone=eu-2,memory_gb=64")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := b.UpdateMeta(ctx, meta); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	for _, m := range []*Membership{a, c} {
		waitFor(t, 5*time.Second, m.Name()+" sees b's new load and zone", func() (bool, string) {
			mem, _ := memberState(m, "node-b")
			return mem.Meta.Load == 7 && mem.Meta.Capabilities.Values["zone"] == "eu-2", describe(m.Members())
		})
	}

	// The subscription opens with the current members, then the update.
	deadline := time.After(5 * time.Second)
	joins := map[string]bool{}
	for {
		select {
		case ev := <-events:
			switch {
			case ev.Type == EventJoin:
				joins[ev.Member.Name] = true
			case ev.Type == EventUpdate && ev.Member.Name == "node-b" && ev.Member.Meta.Load == 7:
				if len(joins) != 3 {
					t.Errorf("update arrived before the snapshot of all members: %v", joins)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no update event for node-b; joins seen: %v", joins)
		}
	}
}

func TestMembershipFailedNodeSeenDead(t *testing.T) {
	a, b, c := startThree(t)
	events := a.Subscribe(t.Context())
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{a, b} {
		took := waitFor(t, 6*time.Second, m.Name()+" sees node-c dead", func() (bool, string) {
			mem, _ := memberState(m, "node-c")
			return mem.State == StateDead, describe(m.Members())
		})
		t.Logf("%s saw node-c dead after %v", m.Name(), took)
	}
	if _, ok := a.MemberByNodeID("node-c"); ok {
		t.Error("a dead member is still returned by MemberByNodeID")
	}
	if slices.ContainsFunc(a.Candidates(), func(c Candidate) bool { return c.NodeID == "node-c" }) {
		t.Error("a dead member is still a scheduling candidate")
	}
	expectLeaveEvent(t, events, "node-c", StateDead)
}

func TestMembershipGracefulLeave(t *testing.T) {
	a, b, c := startThree(t)
	events := a.Subscribe(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := b.Leave(ctx, 3*time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, m := range []*Membership{a, c} {
		waitFor(t, 5*time.Second, m.Name()+" sees node-b left", func() (bool, string) {
			mem, _ := memberState(m, "node-b")
			return mem.State == StateLeft, describe(m.Members())
		})
	}
	expectLeaveEvent(t, events, "node-b", StateLeft)
	if slices.ContainsFunc(a.Candidates(), func(c Candidate) bool { return c.NodeID == "node-b" }) {
		t.Error("a member that left is still a scheduling candidate")
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// After Shutdown every call is refused, none panics (memberlist itself
	// panics on Leave after Shutdown).
	if err := b.Leave(ctx, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Shutdown = %v, want ErrClosed", err)
	}
	if err := b.UpdateMeta(ctx, b.LocalMember().Meta); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Shutdown = %v, want ErrClosed", err)
	}
	if err := b.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, open := <-b.Subscribe(ctx); open {
		t.Error("Subscribe after Shutdown returned an open channel")
	}
}

func expectLeaveEvent(t *testing.T, events <-chan Event, name string, state State) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event channel closed")
			}
			if ev.Type == EventLeave && ev.Member.Name == name {
				if ev.Member.State != state {
					t.Fatalf("leave event for %s has state %s, want %s", name, ev.Member.State, state)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no leave event for %s", name)
		}
	}
}

func TestMembershipWrongSecretCannotJoin(t *testing.T) {
	a := startNode(t, "node-a", nodeOpts{})
	_, err := tryStart(t, "intruder", nodeOpts{key: bytes.Repeat([]byte{0x99}, 32), seeds: seedOf(a)})
	if !errors.Is(err, ErrJoin) {
		t.Fatalf("join with wrong secret: err = %v, want ErrJoin", err)
	}
	// Join is synchronous: had the exchange succeeded, a would already know
	// the intruder.
	if got := aliveNames(a); !slices.Equal(got, []string{"node-a"}) {
		t.Fatalf("a's members after rejected join: %v", got)
	}
	// The right key still works, so the failure was the key, not the seed.
	b := startNode(t, "node-b", nodeOpts{seeds: seedOf(a)})
	waitFor(t, 5*time.Second, "a sees b", func() (bool, string) {
		return slices.Contains(aliveNames(a), b.Name()), describe(a.Members())
	})
}

// A peer with the right secret but garbage metadata is visible with MetaErr,
// never scheduled and never a panic.
func TestMembershipBadRemoteMeta(t *testing.T) {
	a := startNode(t, "node-a", nodeOpts{})
	mc := memberlist.DefaultLANConfig()
	mc.Name = "garbage"
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.SecretKey = testKey
	mc.Label = DefaultLabel
	mc.LogOutput = &logBuf{}
	mc.Delegate = rawMetaDelegate([]byte{metaFormatV1, 0xdf, 0x7f, 0xff, 0xff, 0xff})
	FastTiming().apply(mc)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join(seedOf(a)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a sees the garbage member", func() (bool, string) {
		mem, ok := memberState(a, "garbage")
		return ok && mem.State == StateAlive, describe(a.Members())
	})
	mem, _ := memberState(a, "garbage")
	if !errors.Is(mem.MetaErr, ErrInvalidMeta) || mem.NodeID != "" {
		t.Errorf("garbage member: MetaErr=%v NodeID=%q", mem.MetaErr, mem.NodeID)
	}
	if cands := a.Candidates(); len(cands) != 1 || cands[0].NodeID != "node-a" {
		t.Errorf("candidates = %+v, want only node-a", cands)
	}
}

type rawMetaDelegate []byte

func (d rawMetaDelegate) NodeMeta(int) []byte           { return d }
func (rawMetaDelegate) NotifyMsg([]byte)                {}
func (rawMetaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (rawMetaDelegate) LocalState(bool) []byte          { return nil }
func (rawMetaDelegate) MergeRemoteState([]byte, bool)   {}

func TestJoinRejectsBadConfig(t *testing.T) {
	ctx := t.Context()
	good := NodeMeta{NodeID: "n"}
	cases := map[string]Config{
		"no key":    {Meta: good, BindAddr: "127.0.0.1"},
		"short key": {Meta: good, BindAddr: "127.0.0.1", SecretKey: []byte("short")},
		"bad meta":  {Meta: NodeMeta{}, BindAddr: "127.0.0.1", SecretKey: testKey},
		"bad port":  {Meta: good, BindAddr: "127.0.0.1", SecretKey: testKey, BindPort: 70000},
	}
	for name, cfg := range cases {
		if m, err := Join(ctx, cfg); !errors.Is(err, ErrInvalidConfig) {
			if m != nil {
				_ = m.Shutdown()
			}
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestJoinUnreachableSeedAndCancel(t *testing.T) {
	// A port that was free a moment ago: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	if _, err := tryStart(t, "lonely", nodeOpts{seeds: []string{dead}}); !errors.Is(err, ErrJoin) {
		t.Errorf("unreachable seed: err = %v, want ErrJoin", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = Join(ctx, Config{Meta: NodeMeta{NodeID: "n"}, BindAddr: "127.0.0.1", SecretKey: testKey})
	if !errors.Is(err, ErrJoin) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}
}

func TestUpdateMetaRejects(t *testing.T) {
	a := startNode(t, "node-a", nodeOpts{})
	ctx := t.Context()
	meta := a.LocalMember().Meta
	meta.NodeID = "someone-else"
	if err := a.UpdateMeta(ctx, meta); !errors.Is(err, ErrNodeIDChanged) {
		t.Errorf("changed id: %v", err)
	}
	meta = a.LocalMember().Meta
	meta.Version = strings.Repeat("v", 60)
	meta.Capabilities.Values = map[string]string{}
	for i := range 30 {
		meta.Capabilities.Values[fmt.Sprintf("key_number_%02d", i)] = "some-longish-value"
	}
	if err := a.UpdateMeta(ctx, meta); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	// Rejected updates leave the announced metadata untouched.
	if got := a.LocalMember().Meta; got.Version != "test" {
		t.Errorf("local meta changed by a rejected update: %+v", got)
	}
	// Alone in the cluster, an update is applied locally without waiting.
	meta = a.LocalMember().Meta
	meta.Load = 2
	if err := a.UpdateMeta(ctx, meta); err != nil {
		t.Fatal(err)
	}
	if got := a.LocalMember().Meta.Load; got != 2 {
		t.Errorf("local load = %d, want 2", got)
	}
}

func TestSubscribeClosesOnContext(t *testing.T) {
	a := startNode(t, "node-a", nodeOpts{})
	ctx, cancel := context.WithCancel(t.Context())
	events := a.Subscribe(ctx)
	ev := <-events
	if ev.Type != EventJoin || ev.Member.Name != "node-a" || !ev.Member.Local {
		t.Errorf("first event = %+v, want join of the local node", ev)
	}
	cancel()
	select {
	case _, open := <-events:
		if open {
			t.Error("event after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

func TestSlogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), nil)
	l.Printf("[DEBUG] memberlist: chatter")
	l.Printf("[WARN] memberlist: Refuting a suspect message")
	l.Printf("[ERR] memberlist: Failed to send")
	out := buf.String()
	if strings.Contains(out, "chatter") {
		t.Errorf("debug line leaked at info level: %s", out)
	}
	for _, want := range []string{"level=WARN msg=\"Refuting a suspect message\"", "level=ERROR msg=\"Failed to send\"", "lib=memberlist"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
