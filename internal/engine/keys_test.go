package engine_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/migration/envelope"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// The daemon key is used through methods only: a snapshot signed by
// SignSnapshot verifies under the daemon's entity id, a sealed seed opens
// to the same identity, and the seed WithSeed lends is zeroed afterwards.
func TestDaemonKeyMethods(t *testing.T) {
	ctx := context.Background()
	rt := readyRuntime(t, map[string][]byte{"counter": example(t, "counter-wat", "counter-wat.wasm")})
	id := newID(t)
	want := id.EntityID()
	d, err := rt.Spawn(ctx, "counter", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, d, "a")

	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := d.SignSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	back, err := snapshot.Decode(data, snapshot.Limits{})
	if err != nil {
		t.Fatalf("signed snapshot does not verify: %v", err)
	}
	if back.EntityID != want {
		t.Fatalf("snapshot entity %x, want %x", back.EntityID[:8], want[:8])
	}

	static, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := envelope.Binding{MigrationID: 9, Origin: d.Origin(), Target: "n2", ChainHead: snap.HeadHash}
	env, err := d.SealSeed(nil, static.PublicKey(), b)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := envelope.Open(env, static, envelope.Expect{EntityID: want, Binding: b})
	if err != nil {
		t.Fatalf("sealed seed does not open: %v", err)
	}
	if opened.EntityID() != want {
		t.Fatal("sealed seed opens to another identity")
	}

	var lent []byte
	if err := d.WithSeed(func(seed []byte) error {
		lent = seed
		got, err := identity.FromSeed(seed)
		if err != nil {
			return err
		}
		if got.EntityID() != want {
			t.Error("WithSeed lent another key's seed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(lent) != 32 || !bytes.Equal(lent, make([]byte, 32)) {
		t.Fatalf("the lent seed was not zeroed after use: %x", lent)
	}

	// A daemon that migrated away has no key: every method refuses.
	d.WipeKey()
	if _, err := d.SignSnapshot(snap); !errors.Is(err, snapshot.ErrIdentityMismatch) {
		t.Fatalf("SignSnapshot after WipeKey: %v, want ErrIdentityMismatch", err)
	}
	if _, err := d.SealSeed(nil, static.PublicKey(), b); !errors.Is(err, envelope.ErrMissingKey) {
		t.Fatalf("SealSeed after WipeKey: %v, want ErrMissingKey", err)
	}
	if err := d.WithSeed(func([]byte) error { return nil }); !errors.Is(err, identity.ErrBadKeyFile) {
		t.Fatalf("WithSeed after WipeKey: %v, want ErrBadKeyFile", err)
	}
}
