package meshquic

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
)

func TestRemoteOps(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	ops := newFakeOps()
	ops.hosted[7] = true
	b.ServeLocalOps(ops)
	a.SetPeerAddr(b.ID(), b.Addr().String())
	ctx := ctxTimeout(t, 5*time.Second)

	resp, err := a.RemoteDeliver(ctx, b.ID(), DeliverRequest{Event: Event{Target: 7, Sender: 3, Seq: 1, Payload: []byte("ping")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || string(resp.Outputs[0].Payload) != "ping" {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
	l, err := chain.DecodeLink(resp.Outputs[0].Link)
	if err != nil || l.Origin != 7 || l.Sequence != 1 {
		t.Fatalf("link %+v %v", l, err)
	}
	// A daemon the node does not host and never forwarded.
	_, err = a.RemoteDeliver(ctx, b.ID(), DeliverRequest{Event: Event{Target: 8}})
	wantErr(t, err, ErrNotHosted, ErrRemote)

	sp, err := a.RemoteSpawn(ctx, b.ID(), SpawnRequest{Digest: digestOf(nil)})
	if err != nil || sp.Origin != 42 {
		t.Fatalf("spawn %+v %v", sp, err)
	}
	if err := a.RemoteStop(ctx, b.ID(), StopRequest{Origin: 42}); err != nil {
		t.Fatal(err)
	}
	snap, err := a.RemoteSnapshot(ctx, b.ID(), SnapshotRequest{Origin: 7})
	if err != nil || string(snap.Snapshot) != "snap" {
		t.Fatalf("snapshot %q %v", snap.Snapshot, err)
	}
	ops.mu.Lock()
	defer ops.mu.Unlock()
	for _, p := range ops.peers {
		if p != a.ID() {
			t.Fatalf("LocalOps saw peer %s, want %s", p, a.ID())
		}
	}
	if len(ops.peers) != 5 {
		t.Fatalf("LocalOps saw %d calls with a peer, want 5", len(ops.peers))
	}
}

func TestFetchModule(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	ops := newFakeOps()
	b.ServeLocalOps(ops)
	ctx := ctxTimeout(t, 10*time.Second)
	p := PeerAddr(b.Addr().String())

	mod := bytes.Repeat([]byte("\x00asm-module-"), 100_000) // 1.2 MB: several chunks
	good := digestOf(mod)
	corrupt := append([]byte(nil), mod...)
	corrupt[len(corrupt)/2] ^= 1
	corruptDigest := digestOf([]byte("the bytes the digest promised"))
	ops.modules[good] = mod
	ops.modules[corruptDigest] = corrupt

	got, err := a.FetchModule(ctx, p, good)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, mod) {
		t.Fatal("fetched module differs")
	}
	got, err = a.FetchModule(ctx, p, corruptDigest)
	wantErr(t, err, ErrDigestMismatch)
	if got != nil {
		t.Fatal("corrupted module returned")
	}
	_, err = a.FetchModule(ctx, p, digestOf([]byte("absent")))
	wantErr(t, err, ErrNotFound, ErrRemote)
	_, err = a.FetchModule(ctx, p, "sha256:nothex")
	wantErr(t, err, ErrBadDigest)

	// Size cap: refused from the announced size, before reading.
	cfg := testConfig(creds(t, ca))
	cfg.MaxModuleSize = 1 << 20
	small := listen(t, cfg)
	_, err = small.FetchModule(ctx, p, good)
	wantErr(t, err, ErrModuleTooLarge)
}

func TestMovedRedirect(t *testing.T) {
	ca := newCA(t)
	a, b, c := newEndpoint(t, ca), newEndpoint(t, ca), newEndpoint(t, ca)
	const origin = 0xabc
	bOps, cOps := newFakeOps(), newFakeOps()
	cOps.hosted[origin] = true
	b.ServeLocalOps(bOps)
	c.ServeLocalOps(cOps)
	// b handed the daemon to c at epoch 2.
	b.Routes().SetMoved(origin, c.ID(), 2)
	for _, e := range []*Endpoint{b, c} {
		a.SetPeerAddr(e.ID(), e.Addr().String())
	}
	a.Routes().Set(origin, b.ID(), 1)
	ctx := ctxTimeout(t, 5*time.Second)

	resp, err := a.RouteDeliver(ctx, DeliverRequest{Event: Event{Target: origin, Payload: []byte("late")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || string(resp.Outputs[0].Payload) != "late" {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
	if r, ok := a.Routes().Lookup(origin); !ok || r.Node != c.ID() || r.Epoch != 2 {
		t.Fatalf("route after redirect %+v %v, want %s@2", r, ok, c.ID())
	}
	if n := cOps.calls.Load(); n != 1 {
		t.Fatalf("new host saw %d deliveries, want 1", n)
	}
	// Next delivery goes straight to c.
	bBefore := bOps.calls.Load()
	if _, err := a.RouteDeliver(ctx, DeliverRequest{Event: Event{Target: origin}}); err != nil {
		t.Fatal(err)
	}
	if bOps.calls.Load() != bBefore {
		t.Fatal("delivery still went through the old host")
	}

	// Two nodes pointing at each other: bounded, typed.
	cOps.mu.Lock()
	cOps.hosted[origin] = false
	cOps.mu.Unlock()
	c.Routes().SetMoved(origin, b.ID(), 3)
	b.Routes().SetMoved(origin, c.ID(), 4)
	_, err = a.RemoteDeliver(ctx, b.ID(), DeliverRequest{Event: Event{Target: origin}})
	wantErr(t, err, ErrTooManyRedirects, ErrMoved)
	var me *MovedError
	if !errors.As(err, &me) || me.Origin != origin {
		t.Fatalf("redirect loop error %v carries no MovedError", err)
	}
}
