package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

func TestPickLocationsPrefersLiveOwner(t *testing.T) {
	src := location{node: peerRef{name: "n1"}, owner: 1, info: DaemonInfo{ID: "00000000000000aa"}}
	staged := location{node: peerRef{name: "n2"}, owner: 0, info: DaemonInfo{ID: "00000000000000aa"}}
	adopted := location{node: peerRef{name: "n2"}, owner: 99, info: DaemonInfo{ID: "00000000000000aa"}}
	other := location{node: peerRef{name: "n3"}, owner: 1, info: DaemonInfo{ID: "00000000000000bb"}}

	if got := pickLocations([]location{staged, src}); len(got) != 1 || got[0].node.name != "n1" {
		t.Fatalf("before the target goes live: %+v, want the source", got)
	}
	if got := pickLocations([]location{src, adopted}); len(got) != 1 || got[0].node.name != "n2" {
		t.Fatalf("after the target adopted it: %+v, want the target", got)
	}
	if got := pickLocations([]location{src, other}); len(got) != 2 {
		t.Fatalf("two daemons under one name must stay two: %+v", got)
	}
}

func TestMovedNamesBounded(t *testing.T) {
	var m movedNames
	for i := range maxMovedNames + 10 {
		m.set(fmt.Sprintf("d%d", i), uint64(i))
	}
	if _, ok := m.get("d0"); ok {
		t.Fatal("oldest tombstone kept past the bound")
	}
	if o, ok := m.get(fmt.Sprintf("d%d", maxMovedNames+9)); !ok || o != maxMovedNames+9 {
		t.Fatalf("newest tombstone: %d %v", o, ok)
	}
	m.set("d20", 7) // re-set does not grow the order
	if len(m.order) != maxMovedNames || len(m.m) != maxMovedNames {
		t.Fatalf("order %d, map %d", len(m.order), len(m.m))
	}
}

// Between the cutover and the name reaching the target, the name resolves
// through the source's tombstone, from the source and from the target.
func TestNameResolvesBeforeTheTargetHasIt(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); err != nil {
		t.Fatal(err)
	}
	// Undo the name hand-over: the window before it.
	d, err := b.rt.Daemon(originOf(t, c.ID))
	if err != nil {
		t.Fatal(err)
	}
	d.SetName("")
	if resp := a.answerLookup("c"); resp.Found || resp.MovedTo != b.ID().String() || resp.Origin != originOf(t, c.ID) {
		t.Fatalf("source's answer for the moved name: %+v", resp)
	}
	if got := send(t, a, "c", "x"); got != "2" {
		t.Fatalf("by name through the source: %s", got)
	}
	if got := send(t, b, "c", "x"); got != "3" {
		t.Fatalf("by name through the target, before it has the name: %s", got)
	}
	info, err := b.Daemon(ctx, "c")
	if err != nil || info.ID != c.ID {
		t.Fatalf("stats by name on the target: %+v %v", info, err)
	}
	if _, err := b.Logs(ctx, "c"); err != nil {
		t.Fatalf("logs by name on the target: %v", err)
	}
	if _, _, err := b.Snapshot(ctx, "c"); err != nil {
		t.Fatalf("snapshot by name on the target: %v", err)
	}
	if res, err := b.Migrate(ctx, MigrateRequest{Ref: "c", To: "a"}, nil); err != nil || res.To != "a" {
		t.Fatalf("migrate by name from the target: %+v %v", res, err)
	}
	if got := send(t, b, "c", "get"); got != "3" {
		t.Fatalf("after moving back: %s", got)
	}
	if _, err := a.Send(ctx, "nosuch", []byte("x")); !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
}

func TestKindNamesFromPeers(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	k, err := a.Deploy(ctx, examples.CounterWAT(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	if dg, err := b.ResolveKind(ctx, "counter"); err != nil || dg != k.Digest {
		t.Fatalf("ResolveKind on a node without it: %q %v", dg, err)
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "x"}); err != nil {
		t.Fatalf("spawn by a kind name deployed on a peer: %v", err)
	}
	if got, err := b.store.Aliases(); err != nil || got["counter"] != k.Digest {
		t.Fatalf("kind name not stored durably: %v %v", got, err)
	}
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "abacus"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "abacus", Name: "x"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("spawn with a taken name: %v", err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "abacus", Name: "x", On: "b"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("remote spawn with a taken name: %v", err)
	}
	if _, err := b.rt.Kind("abacus"); err == nil {
		t.Fatal("a failed spawn registered its kind name")
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "nokind"}); !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), "2 alive node(s)") {
		t.Fatalf("unknown kind: %v", err)
	}
	// Two modules under one name: refused, naming both.
	echo, err := os.ReadFile("../plugins/examples/echo-wat/echo-wat.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Deploy(ctx, echo, "twin"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "twin"); err != nil {
		t.Fatal(err)
	}
	c := startTest(t, "c", t.TempDir(), a.GossipAddr())
	waitPeers(t, c, 2)
	waitPeers(t, a, 2)
	waitPeers(t, b, 2)
	if dg, err := c.ResolveKind(ctx, "twin"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "@a") || !strings.Contains(err.Error(), "@b") {
		t.Fatalf("one kind name for two modules: %q %v", dg, err)
	}
}

func TestRestoreFindsTheKeyHolder(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", On: "b"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	data, _, err := a.Snapshot(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	holder, err := a.KeyHolder(ctx, originOf(t, c.ID))
	if err != nil || holder.Name != "b" {
		t.Fatalf("KeyHolder: %+v %v", holder, err)
	}
	info, err := a.RestoreForce(ctx, data, "", "", true)
	if err != nil || info.Node != "b" {
		t.Fatalf("restore through a node without the key: %+v %v", info, err)
	}
	if got := send(t, a, "c", "get"); got != "1" {
		t.Fatalf("count after restore: %s", got)
	}
	_, err = a.RestoreOn(ctx, data, "", "a")
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "node b") {
		t.Fatalf("restore on the wrong node: %v", err)
	}
}

func TestExpectThenMigrateWithoutIdentity(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.key")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c", Key: key})
	if err != nil || originOf(t, c.ID) != id.Origin() {
		t.Fatalf("spawn with a key: %+v %v", c, err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Key: key, On: "b"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a key relayed to another node: %v", err)
	}
	if _, err := b.Spawn(ctx, SpawnRequest{Kind: "counter", Key: key}); !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "on a") {
		t.Fatalf("a second daemon with the same key: %v", err)
	}
	send(t, a, "c", "x")
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b", NoIdentity: true}, nil); !errors.Is(err, ErrMigration) {
		t.Fatalf("--no-identity to an unprepared target: %v", err)
	}
	if _, err := b.Expect(ctx, ExpectRequest{Daemon: "c", Key: []byte("junk")}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := b.Expect(ctx, ExpectRequest{Daemon: "c", Kind: "nokind", Key: key}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("unknown kind: %v", err)
	}
	res, err := b.Expect(ctx, ExpectRequest{Daemon: "c", Kind: "counter", Key: key})
	if err != nil || !res.Identity || res.Daemon != c.ID {
		t.Fatalf("expect: %+v %v", res, err)
	}
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b", NoIdentity: true}, nil); err != nil {
		t.Fatalf("--no-identity to a prepared target: %v", err)
	}
	if got := send(t, a, "c", "x"); got != "2" {
		t.Fatalf("after the move: %s", got)
	}
	// Without a key, the node expects the daemon sealed (no error, no key).
	res, err = a.Expect(ctx, ExpectRequest{Daemon: "c"})
	if err != nil || res.Identity || res.Node != "a" {
		t.Fatalf("expect without a key: %+v %v", res, err)
	}
}

func TestPickLocationsWeakHitsYield(t *testing.T) {
	moved := location{node: peerRef{name: "n2"}, owner: 5, weak: true, info: DaemonInfo{ID: "00000000000000aa"}}
	named := location{node: peerRef{name: "n2"}, owner: 1, info: DaemonInfo{ID: "00000000000000bb", Name: "d"}}
	if got := pickLocations([]location{moved, named}); len(got) != 1 || got[0].info.ID != named.info.ID {
		t.Fatalf("%+v, want the daemon that has the name", got)
	}
	if got := pickLocations([]location{moved}); len(got) != 1 || got[0].info.ID != moved.info.ID {
		t.Fatalf("%+v, want the moved daemon while its name is on its way", got)
	}
}

// A daemon whose name stayed behind (its new node already has a daemon of
// that name) does not capture the name through the old node's tombstone.
func TestMovedNameDoesNotShadowAnother(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	waitPeers(t, b, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	moving, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	native, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "d", On: "b"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, moving.ID, "x")
	send(t, a, moving.ID, "x")
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: moving.ID, To: "b"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := send(t, a, "d", "x"); got != "1" {
		t.Fatalf("name through the old node reached the moved daemon (count %s), not %s", got, native.ID)
	}
	if got := send(t, a, moving.ID, "get"); got != "2" {
		t.Fatalf("moved daemon by id: %s", got)
	}
}

func TestAnnounceAdmin(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:7401", "http://127.0.0.1:7401"},
		{"http://0.0.0.0:7401", "http://10.0.0.5:7401"},
		{"https://[::]:443", "https://10.0.0.5:443"},
		{"http://localhost:7401", "http://localhost:7401"},
		{"not a url", ""},
		{"http://h:1/" + strings.Repeat("x", 200), "http://h:1"},
		{"http://" + strings.Repeat("h", 200) + ":1", ""},
	} {
		n := &Node{meta: cluster.NodeMeta{QUICAddr: "10.0.0.5:7402"}, log: slog.New(slog.DiscardHandler), metaKick: make(chan struct{}, 1)}
		n.announceAdmin(tc.in)
		if got := n.AdminURL(); got != tc.want {
			t.Errorf("announceAdmin(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
