package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/token"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// chanCluster starts three nodes that see each other, with the counter
// example deployed on each.
func chanCluster(t *testing.T) []*Node {
	t.Helper()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	ns := []*Node{a, b, c}
	for _, n := range ns {
		waitPeers(t, n, 2)
		if _, err := n.Deploy(context.Background(), examples.CounterWAT(), "counter"); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func countOf(t *testing.T, n *Node, ref string) int {
	t.Helper()
	got, err := strconv.Atoi(send(t, n, ref, "get"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func waitCount(t *testing.T, n *Node, ref string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := countOf(t, n, ref)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s counted %d, want %d", ref, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestChannelPublishReachesEverySubscriberOnceAcrossMigrations(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b, c := ns[0], ns[1], ns[2]
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: "orders/eu"}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []struct {
		n    *Node
		name string
	}{{b, "s1"}, {c, "s2"}} {
		if _, err := sp.n.Spawn(ctx, SpawnRequest{Kind: "counter", Name: sp.name}); err != nil {
			t.Fatal(err)
		}
		// Subscribed by name, through a node that does not host it.
		if _, err := a.Subscribe(ctx, sp.name, "orders/eu", nil); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := a.Subscriptions(ctx, "s1")
	if err != nil || len(subs) != 1 || subs[0].Channel != "orders/eu" || subs[0].Sub == "" {
		t.Fatalf("subscriptions of s1: %+v, %v", subs, err)
	}
	const total = 2000
	done := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 100 {
			var ps [][]byte
			for j := i; j < i+100; j++ {
				ps = append(ps, []byte(fmt.Sprint(j)))
			}
			res, err := a.Publish(ctx, PublishRequest{Channel: "orders/eu", Payloads: ps})
			if err == nil && res.Accepted != 100 {
				err = fmt.Errorf("accepted %d of 100", res.Accepted)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := b.Migrate(ctx, MigrateRequest{Ref: "s1", To: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := a.Migrate(ctx, MigrateRequest{Ref: "s2", To: "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Subscriptions) != 1 || res.Subscriptions[0].Error != "" {
		t.Fatalf("migration summary subscriptions: %+v", res.Subscriptions)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitCount(t, a, "s1", total)
	waitCount(t, a, "s2", total)
	chs, err := c.Channels(ctx)
	if err != nil || len(chs) != 1 {
		t.Fatalf("channels: %+v %v", chs, err)
	}
	if chs[0].Published != total || len(chs[0].Subscribers) != 2 {
		t.Fatalf("channel: %+v", chs[0])
	}
}

func issueToken(t *testing.T, issuer ed25519.PrivateKey, subject []byte, scopes token.Scope, pattern string) []byte {
	t.Helper()
	p, err := token.ParsePattern(pattern)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.Issue(issuer, token.Claims{Subject: ed25519.PublicKey(subject), Scopes: scopes, Channel: p,
		NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return []byte(tok.String())
}

func entityOf(t *testing.T, info DaemonInfo) []byte {
	t.Helper()
	b, err := hex.DecodeString(info.Entity)
	if err != nil || len(b) != 32 {
		t.Fatalf("entity %q", info.Entity)
	}
	return b
}

// TestRestrictedChannelTokens: a restricted channel admits only what a
// trusted issuer granted, to the daemon it granted it to, and the grant
// keeps working after the daemon migrated (its home re-verifies it on the
// target's re-subscribe).
func TestRestrictedChannelTokens(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b := ns[0], ns[1]
	issuerPub, issuer, _ := ed25519.GenerateKey(nil)
	_, stranger, _ := ed25519.GenerateKey(nil)
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: "orders/eu", Restricted: true, Trusted: []string{hex.EncodeToString(issuerPub)}}); err != nil {
		t.Fatal(err)
	}
	s1, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		tok  []byte
	}{
		{"no token", nil},
		{"a token for another daemon", issueToken(t, issuer, entityOf(t, other), token.ScopeSubscribe, "orders/*")},
		{"publish scope only", issueToken(t, issuer, entityOf(t, s1), token.ScopePublish, "orders/*")},
		{"another channel", issueToken(t, issuer, entityOf(t, s1), token.ScopeSubscribe, "billing/*")},
		{"an untrusted issuer", issueToken(t, stranger, entityOf(t, s1), token.ScopeSubscribe, "orders/*")},
	} {
		_, err := a.Subscribe(ctx, "s1", "orders/eu", c.tok)
		if !errors.Is(err, ErrNotPermitted) {
			t.Errorf("%s: subscribe answered %v, want ErrNotPermitted", c.what, err)
		}
	}
	if subs, _ := a.Subscriptions(ctx, "s1"); len(subs) != 0 {
		t.Fatalf("a refused subscription is in the ledger: %+v", subs)
	}
	if _, err := a.Subscribe(ctx, "s1", "orders/eu", issueToken(t, issuer, entityOf(t, s1), token.ScopeSubscribe, "orders/*")); err != nil {
		t.Fatal(err)
	}
	clientPub, _, _ := ed25519.GenerateKey(nil)
	pubTok := issueToken(t, issuer, clientPub, token.ScopePublish, "orders/eu")
	if _, err := a.Publish(ctx, PublishRequest{Channel: "orders/eu", Payloads: [][]byte{[]byte("x")}}); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("publish without a token: %v", err)
	}
	if _, err := a.Publish(ctx, PublishRequest{Channel: "orders/eu", Payloads: [][]byte{[]byte("1"), []byte("2")}, Token: pubTok}); err != nil {
		t.Fatal(err)
	}
	waitCount(t, a, "s1", 2)
	if _, err := b.Migrate(ctx, MigrateRequest{Ref: "s1", To: "c"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, PublishRequest{Channel: "orders/eu", Payloads: [][]byte{[]byte("3")}, Token: pubTok}); err != nil {
		t.Fatal(err)
	}
	waitCount(t, a, "s1", 3)
}

// publishN publishes k payloads "0".."k-1" to name through n.
func publishN(t *testing.T, n *Node, name string, k int) {
	t.Helper()
	ps := make([][]byte, k)
	for i := range k {
		ps[i] = []byte(fmt.Sprint(i))
	}
	if _, err := n.Publish(context.Background(), PublishRequest{Channel: name, Payloads: ps}); err != nil {
		t.Fatal(err)
	}
}

// spawnSubscribed spawns a counter named daemon on host and subscribes it
// to name through via.
func spawnSubscribed(t *testing.T, via, host *Node, daemon, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := host.Spawn(ctx, SpawnRequest{Kind: "counter", Name: daemon}); err != nil {
		t.Fatal(err)
	}
	if _, err := via.Subscribe(ctx, daemon, name, nil); err != nil {
		t.Fatal(err)
	}
}

// chanHomedOn finds a channel name whose home among ns is want.
func chanHomedOn(t *testing.T, want *Node, ns ...*Node) string {
	t.Helper()
	var ids []channel.NodeID
	for _, n := range ns {
		ids = append(ids, n.id)
	}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("test/%d", i)
		if channel.Home(name, ids) == want.id {
			return name
		}
	}
	t.Fatal("no name homes there")
	return ""
}

// TestFullChannelBlocksThenFails: a subscriber that cannot take messages
// fills its queue; a publish then waits and fails with ErrChannelFull
// (nothing queued, counted), never dropping a message.
func TestFullChannelBlocksThenFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := New(ctx, Config{DataDir: dir, Name: "a", ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Dev: true, CheckpointInterval: -1, ChannelQueue: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(ctx) })
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	name := chanHomedOn(t, a, a, b)
	if _, err := b.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateChannel(ctx, ChannelDef{Name: name}); err != nil {
		t.Fatal(err)
	}
	spawnSubscribed(t, b, b, "s", name)
	// b dies without a word: its daemon's queue at a cannot drain.
	b.Close(ctx)
	var ps [][]byte
	for i := range 4 {
		ps = append(ps, []byte(fmt.Sprint(i)))
	}
	if _, err := a.Publish(ctx, PublishRequest{Channel: name, Payloads: ps}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Publish(ctx, PublishRequest{Channel: name, Payloads: [][]byte{[]byte("5")}, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrChannelFull) || res.Accepted != 0 {
		t.Fatalf("publish to a full channel: %+v, %v", res, err)
	}
	chs, err := a.Channels(ctx)
	if err != nil || len(chs) != 1 || chs[0].Full == 0 || chs[0].Published != 4 || chs[0].Subscribers[0].Queued != 4 {
		t.Fatalf("channels: %+v, %v", chs, err)
	}
}

// TestUnsubscribeAndStop: an unsubscribed daemon gets nothing more, and a
// stopped subscriber no longer holds a queue at the home.
func TestUnsubscribeAndStop(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b := ns[0], ns[1]
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: "news"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s1", "s2"} {
		if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: s}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Subscribe(ctx, s, "news", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Subscribe(ctx, "s1", "no/such", nil); !errors.Is(err, ErrChannelNotFound) {
		t.Fatalf("subscribe to a missing channel: %v", err)
	}
	if _, err := a.Publish(ctx, PublishRequest{Channel: "news", Payloads: [][]byte{[]byte("1")}}); err != nil {
		t.Fatal(err)
	}
	waitCount(t, a, "s1", 1)
	waitCount(t, a, "s2", 1)
	if err := a.Unsubscribe(ctx, "s1", "news"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unsubscribe(ctx, "s1", "news"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("second unsubscribe: %v", err)
	}
	if _, err := a.Stop(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		chs, err := a.Channels(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(chs) == 1 && len(chs[0].Subscribers) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers left: %+v", chs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := a.Publish(ctx, PublishRequest{Channel: "news", Payloads: [][]byte{[]byte("2")}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := countOf(t, a, "s1"); got != 1 {
		t.Fatalf("unsubscribed s1 counted %d", got)
	}
}

// TestChannelSurvivesItsHomeLeaving: a home that shuts down hands its
// channels over with their queues; subscribers keep receiving, none lost.
func TestChannelSurvivesItsHomeLeaving(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b, c := ns[0], ns[1], ns[2]
	name := chanHomedOn(t, c, a, b, c)
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: name}); err != nil {
		t.Fatal(err)
	}
	spawnSubscribed(t, a, b, "s", name)
	pub := func(k int) { publishN(t, a, name, k) }
	pub(50)
	c.Close(ctx)
	waitPeers(t, a, 1)
	pub(50)
	waitCount(t, b, "s", 100)
	chs, err := b.Channels(ctx)
	if err != nil || len(chs) != 1 || chs[0].Home == "c" {
		t.Fatalf("channels after the home left: %+v %v", chs, err)
	}
}

// TestSubscriberNodeRestart: the subscriber's node restarts; its daemon's
// ledger and horizon come back from disk and the stream goes on, exactly.
func TestSubscriberNodeRestart(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	bdir := t.TempDir()
	b := startTest(t, "b", bdir, a.GossipAddr())
	waitPeers(t, a, 1)
	name := chanHomedOn(t, a, a, b)
	if _, err := b.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: name}); err != nil {
		t.Fatal(err)
	}
	spawnSubscribed(t, b, b, "s", name)
	pub := func(k int) { publishN(t, a, name, k) }
	pub(100)
	b.Close(ctx)
	pub(100) // queued at a while b is down
	b2, err := New(ctx, Config{DataDir: bdir, Name: "b", ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: []string{a.GossipAddr()}, Dev: true, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close(ctx) })
	pub(100)
	waitCount(t, b2, "s", 300)
	if subs, err := b2.Subscriptions(ctx, "s"); err != nil || len(subs) != 1 {
		t.Fatalf("ledger after restart: %+v %v", subs, err)
	}
}

func aggregatorModule(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "aggregator-go", "aggregator-go.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aggStats reads an aggregator's "get": total, anomalies and
// publisher -> "count:last".
func aggStats(t testing.TB, n *Node, ref string) (total, anomalies int, per map[string]string) {
	t.Helper()
	res, err := n.Send(context.Background(), ref, []byte("get"))
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	per = map[string]string{}
	for _, o := range res.Outputs {
		k, v, _ := strings.Cut(string(o), "=")
		switch k {
		case "total":
			total, _ = strconv.Atoi(v)
		case "anomalies":
			anomalies, _ = strconv.Atoi(v)
		default:
			per[k] = v
		}
	}
	return total, anomalies, per
}

// TestDaemonAndOutsidePublishersAcrossMigrations is the issue's stream at
// node level: an outside publisher and a publisher daemon stream to a
// channel with two subscribers on two other nodes; each subscriber and the
// publisher migrate once during the stream; every subscriber counts every
// message once, in order per publisher.
func TestDaemonAndOutsidePublishersAcrossMigrations(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b, c := ns[0], ns[1], ns[2]
	for _, n := range ns {
		if _, err := n.Deploy(ctx, aggregatorModule(t), "aggregator"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CreateChannel(ctx, ChannelDef{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		n    *Node
		name string
	}{{b, "s1"}, {c, "s2"}, {a, "pub"}} {
		if _, err := s.n.Spawn(ctx, SpawnRequest{Kind: "aggregator", Name: s.name}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"s1", "s2"} {
		if _, err := a.Subscribe(ctx, s, "orders", nil); err != nil {
			t.Fatal(err)
		}
	}
	const rounds, per = 10, 100
	errs := make(chan error, 2)
	go func() { // the outside publisher
		for r := range rounds {
			var ps [][]byte
			for i := range per {
				ps = append(ps, []byte(fmt.Sprintf("client %d", r*per+i+1)))
			}
			if _, err := a.Publish(ctx, PublishRequest{Channel: "orders", Payloads: ps}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() { // the publisher daemon, driven by events from outside
		for range rounds {
			if _, err := a.Send(ctx, "pub", []byte(fmt.Sprintf("pub orders %d dpub", per))); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for _, m := range []MigrateRequest{{Ref: "s1", To: "c"}, {Ref: "pub", To: "b"}, {Ref: "s2", To: "a"}} {
		if _, err := a.Migrate(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"client": fmt.Sprintf("%d:%d", rounds*per, rounds*per), "dpub": fmt.Sprintf("%d:%d", rounds*per, rounds*per)}
	for _, s := range []string{"s1", "s2"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			total, anomalies, got := aggStats(t, a, s)
			if anomalies != 0 || total > 2*rounds*per {
				t.Fatalf("%s: total %d, anomalies %d, %v", s, total, anomalies, got)
			}
			if total == 2*rounds*per {
				if !maps.Equal(got, want) {
					t.Fatalf("%s: %v, want %v", s, got, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: total %d of %d, %v", s, total, 2*rounds*per, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestFitBatch(t *testing.T) {
	mb := func(int) int { return 1 << 20 }
	for _, c := range []struct {
		n    int
		size func(int) int
		want int
	}{
		{0, mb, 0},
		{1, func(int) int { return 100 << 20 }, 1}, // one always goes (the home refuses it if too large)
		{10, mb, chanBatchBytes / (1 << 20)},
		{1000, func(int) int { return 10 }, chanBatch},
	} {
		if got := fitBatch(c.n, c.size); got != c.want {
			t.Errorf("fitBatch(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestDaemonPublishesWithItsLedgerToken: on a restricted channel a daemon
// publishes under the token it subscribed with (subscribe and publish
// scope, its own entity); one without a token is refused at the home and
// nothing of it arrives.
func TestDaemonPublishesWithItsLedgerToken(t *testing.T) {
	ns := chanCluster(t)
	ctx := context.Background()
	a, b := ns[0], ns[1]
	for _, n := range ns {
		if _, err := n.Deploy(ctx, aggregatorModule(t), "aggregator"); err != nil {
			t.Fatal(err)
		}
	}
	issuerPub, issuer, _ := ed25519.GenerateKey(nil)
	if _, err := a.CreateChannel(ctx, ChannelDef{Name: "pay", Restricted: true, Trusted: []string{hex.EncodeToString(issuerPub)}}); err != nil {
		t.Fatal(err)
	}
	infos := map[string]DaemonInfo{}
	for _, s := range []string{"s1", "pub", "rogue"} {
		info, err := b.Spawn(ctx, SpawnRequest{Kind: "aggregator", Name: s})
		if err != nil {
			t.Fatal(err)
		}
		infos[s] = info
	}
	for _, s := range []string{"s1", "pub"} {
		tok := issueToken(t, issuer, entityOf(t, infos[s]), token.ScopeSubscribe|token.ScopePublish, "pay")
		if _, err := a.Subscribe(ctx, s, "pay", tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"rogue", "pub"} {
		if _, err := a.Send(ctx, s, []byte("pub pay 5 "+s)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		total, anomalies, per := aggStats(t, a, "s1")
		if anomalies != 0 || per["rogue"] != "" {
			t.Fatalf("s1: total %d anomalies %d %v", total, anomalies, per)
		}
		if per["pub"] == "5:5" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s1 never got pub's messages: %v", per)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if _, _, per := aggStats(t, a, "s1"); per["rogue"] != "" {
		t.Fatalf("a refused publisher's messages arrived: %v", per)
	}
}
