package envelope

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// fixture is a daemon, a target node key and a valid envelope between them.
type fixture struct {
	id     identity.Identity
	target *ecdh.PrivateKey
	want   Expect
	env    []byte
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	id, err := identity.GenerateFrom(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	target, err := ecdh.X25519().GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	head := chain.Link{Origin: id.Origin(), Sequence: 12}
	b := Binding{MigrationID: 77, Origin: id.Origin(), Target: "node-t", ChainHead: chain.Hash(head, []byte("out"))}
	env, err := Seal(bytes.NewReader(bytes.Repeat([]byte{3}, 64)), id, target.PublicKey(), b)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{id: id, target: target, want: Expect{EntityID: id.EntityID(), Binding: b}, env: env}
}

func TestSealOpenRoundTrip(t *testing.T) {
	f := newFixture(t)
	got, err := Open(f.env, f.target, f.want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Seed(), f.id.Seed()) {
		t.Fatal("recovered a different seed")
	}
	if len(f.env) > MaxSize {
		t.Fatalf("envelope %d bytes over MaxSize %d", len(f.env), MaxSize)
	}
}

func TestSealRefusesMissingPrerequisites(t *testing.T) {
	f := newFixture(t)
	if _, err := Seal(nil, f.id, nil, f.want.Binding); !errors.Is(err, ErrMissingKey) || !errors.Is(err, ErrEnvelope) {
		t.Fatalf("nil target key: %v", err)
	}
	if _, err := Seal(nil, identity.Identity{}, f.target.PublicKey(), f.want.Binding); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("zero identity: %v", err)
	}
	wrong := f.want.Binding
	wrong.Origin++
	if _, err := Seal(nil, f.id, f.target.PublicKey(), wrong); !errors.Is(err, ErrBinding) {
		t.Fatalf("origin not the daemon's: %v", err)
	}
	if _, err := Open(f.env, nil, f.want); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("open without key: %v", err)
	}
}

// Byte offsets of the envelope's regions for a 6-byte target id.
const (
	offMagic    = 0
	offVersion  = 4
	offMigID    = 5
	offOrigin   = 13
	offHead     = 21
	offTarget   = 55
	offEntity   = offTarget + 6
	offEph      = offEntity + 32
	offCipher   = offEph + 32
	offSig      = offCipher + ctSize
	envelopeLen = offSig + 64
)

func TestEveryTamperedByteIsRefused(t *testing.T) {
	f := newFixture(t)
	if len(f.env) != envelopeLen {
		t.Fatalf("layout changed: %d bytes", len(f.env))
	}
	regions := []struct {
		name string
		off  int
		want error
	}{
		{"magic", offMagic, ErrMalformed},
		{"version", offVersion, ErrMalformed},
		{"migration id", offMigID, ErrSignature},
		{"origin", offOrigin, ErrSignature},
		{"chain head", offHead + 31, ErrSignature},
		{"target", offTarget, ErrSignature},
		{"entity", offEntity, ErrSignature},
		{"ephemeral key", offEph, ErrSignature},
		{"ciphertext", offCipher, ErrSignature},
		{"gcm tag", offSig - 1, ErrSignature},
		{"signature", offSig + 5, ErrSignature},
	}
	for _, r := range regions {
		env := bytes.Clone(f.env)
		env[r.off] ^= 0x01
		if _, err := Open(env, f.target, f.want); !errors.Is(err, r.want) || !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s tampered: got %v, want %v", r.name, err, r.want)
		}
	}
	// And exhaustively: no single flipped bit anywhere opens.
	for i := range f.env {
		env := bytes.Clone(f.env)
		env[i] ^= 0x80
		if _, err := Open(env, f.target, f.want); err == nil {
			t.Fatalf("flipped byte %d still opens", i)
		}
	}
}

func TestLengthTampering(t *testing.T) {
	f := newFixture(t)
	for name, env := range map[string][]byte{
		"truncated": f.env[:len(f.env)-1],
		"extended":  append(bytes.Clone(f.env), 0),
		"empty":     nil,
		"header":    f.env[:55],
	} {
		if _, err := Open(env, f.target, f.want); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	env := bytes.Clone(f.env)
	env[53], env[54] = 0, 0 // target length 0
	if _, err := Open(env, f.target, f.want); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero target length: %v", err)
	}
}

func TestBindingMismatchIsRefused(t *testing.T) {
	f := newFixture(t)
	other, _ := identity.GenerateFrom(bytes.NewReader(bytes.Repeat([]byte{8}, 64)))
	mutate := map[string]func(*Expect){
		"migration id": func(e *Expect) { e.MigrationID++ },
		"origin":       func(e *Expect) { e.Origin++ },
		"target":       func(e *Expect) { e.Target = "node-x" },
		"chain head":   func(e *Expect) { e.ChainHead[0] ^= 1 },
	}
	for name, m := range mutate {
		want := f.want
		m(&want)
		if _, err := Open(f.env, f.target, want); !errors.Is(err, ErrBinding) {
			t.Errorf("%s differs: got %v, want ErrBinding", name, err)
		}
	}
	want := f.want
	want.EntityID = other.EntityID()
	if _, err := Open(f.env, f.target, want); !errors.Is(err, ErrSignature) {
		t.Errorf("expected another entity: got %v, want ErrSignature", err)
	}
}

func TestWrongTargetKeyCannotDecrypt(t *testing.T) {
	f := newFixture(t)
	wrong, _ := ecdh.X25519().GenerateKey(bytes.NewReader(bytes.Repeat([]byte{5}, 64)))
	if _, err := Open(f.env, wrong, f.want); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("got %v, want ErrDecrypt", err)
	}
}

func TestAttackerResignedEnvelopeIsRefused(t *testing.T) {
	f := newFixture(t)
	attacker, _ := identity.GenerateFrom(bytes.NewReader(bytes.Repeat([]byte{6}, 64)))
	b := f.want.Binding
	b.Origin = attacker.Origin()
	env, err := Seal(bytes.NewReader(bytes.Repeat([]byte{4}, 64)), attacker, f.target.PublicKey(), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(env, f.target, f.want); !errors.Is(err, ErrSignature) {
		t.Fatalf("attacker's own valid envelope: got %v, want ErrSignature", err)
	}
}

func TestSignedEnvelopeAroundWrongSeedIsRefused(t *testing.T) {
	f := newFixture(t)
	other, _ := identity.GenerateFrom(bytes.NewReader(bytes.Repeat([]byte{8}, 64)))
	env, err := seal(bytes.NewReader(bytes.Repeat([]byte{2}, 64)), f.id, other.Seed(), f.target.PublicKey(), f.want.Binding)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(env, f.target, f.want); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("got %v, want ErrKeyMismatch", err)
	}
}

func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.env)
	f.Add(fx.env[:60])
	f.Fuzz(func(t *testing.T, env []byte) {
		id, err := Open(env, fx.target, fx.want)
		if err == nil && !bytes.Equal(env, fx.env) {
			t.Fatalf("a different envelope opened as %x", id.EntityID())
		}
		if err != nil && !errors.Is(err, ErrEnvelope) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
