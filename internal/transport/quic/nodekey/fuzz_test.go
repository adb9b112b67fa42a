package nodekey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

// Node ids arrive as text from gossip metadata, migration frames and the
// CLI; an accepted id must be the one canonical form String produces, or two
// spellings of one node compare unequal as text.
func FuzzParseNodeID(f *testing.F) {
	k := fuzzNodeKey(f, 1)
	id := k.ID().String()
	for _, s := range []string{id, strings.ToUpper(id), "", "abc", id + "00", "zz" + id[2:], " " + id[1:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseNodeID(s)
		var viaText NodeID
		terr := viaText.UnmarshalText([]byte(s))
		if (err == nil) != (terr == nil) || got != viaText {
			t.Fatalf("ParseNodeID and UnmarshalText disagree on %q: %v / %v", s, err, terr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadNodeID) {
				t.Fatalf("ParseNodeID(%q): error %v is not ErrBadNodeID", s, err)
			}
			return
		}
		if got.String() != s {
			t.Fatalf("ParseNodeID(%q) accepted a non-canonical id (renders as %s)", s, got)
		}
	})
}

// TestParseNodeIDRejectsUppercase: found by FuzzParseNodeID.
func TestParseNodeIDRejectsUppercase(t *testing.T) {
	id := fuzzNodeKey(t, 1).ID().String()
	if _, err := ParseNodeID(strings.ToUpper(id)); !errors.Is(err, ErrBadNodeID) {
		t.Fatalf("ParseNodeID(upper) = %v, want ErrBadNodeID", err)
	}
}

// Key files are read from disk at start; an accepted file must hold exactly
// one ed25519 key that re-encodes to a file holding the same key.
func FuzzParseNodeKey(f *testing.F) {
	k := fuzzNodeKey(f, 2)
	good, err := k.MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append(append([]byte{}, good...), "\n\n"...))
	f.Add(append(append([]byte{}, good...), good...))
	f.Add(bytes.Replace(good, []byte("PRIVATE KEY"), []byte("PUBLIC KEY"), 2))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		nk, err := parseNodeKey(data, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrBadKeyFile) {
				t.Fatalf("error %v is not ErrBadKeyFile", err)
			}
			return
		}
		if len(nk.priv) != ed25519.PrivateKeySize {
			t.Fatalf("accepted a %d-byte private key", len(nk.priv))
		}
		if !bytes.Equal(ed25519.NewKeyFromSeed(nk.priv.Seed()), nk.priv) {
			t.Fatal("accepted key's public half does not match its seed")
		}
		enc, err := nk.MarshalPEM()
		if err != nil {
			t.Fatalf("accepted key does not re-encode: %v", err)
		}
		back, err := parseNodeKey(enc, "fuzz")
		if err != nil || !bytes.Equal(back.priv, nk.priv) {
			t.Fatalf("re-encoded key does not parse back: %v", err)
		}
	})
}

// Peers present certificates in the TLS handshake: an accepted one proves
// exactly the node id its key hashes to.
func FuzzVerifyNodeCert(f *testing.F) {
	ca, err := DevCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	for i := range byte(3) {
		der, err := ca.IssueNodeCert(fuzzNodeKey(f, 10+i).Public())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add(ca.Cert().Raw) // a CA certificate is not a node certificate
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		id, pub, err := VerifyNodeCert([][]byte{der}, ca.Cert(), now)
		if err != nil {
			if !errors.Is(err, ErrNotMember) {
				t.Fatalf("error %v is not ErrNotMember", err)
			}
			return
		}
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte node key", len(pub))
		}
		if id != NodeIDFromPublic(pub) || id.IsZero() {
			t.Fatalf("accepted certificate proves %s for a key of node %s", id, NodeIDFromPublic(pub))
		}
	})
}

// Static key bindings travel in gossip, relayed by anyone: an accepted one
// was signed by the wanted node and returns the key that was signed.
func FuzzStaticKeyBinding(f *testing.F) {
	k := fuzzNodeKey(f, 3)
	static, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	b := k.BindStaticKey(static.PublicKey())
	f.Add(b.NodeKey, b.StaticKey, b.Sig)
	f.Add(b.NodeKey, b.StaticKey[:31], b.Sig)
	f.Add(b.NodeKey[:31], b.StaticKey, b.Sig)
	f.Add(b.NodeKey, make([]byte, 32), b.Sig)
	f.Fuzz(func(t *testing.T, nodeKey, staticKey, sig []byte) {
		want := k.ID()
		if len(nodeKey) == ed25519.PublicKeySize {
			want = NodeIDFromPublic(nodeKey)
		}
		bind := StaticKeyBinding{NodeKey: nodeKey, StaticKey: staticKey, Sig: sig}
		pub, err := bind.Verify(want)
		if err != nil {
			if !errors.Is(err, ErrBadBinding) {
				t.Fatalf("error %v is not ErrBadBinding", err)
			}
			return
		}
		if !bytes.Equal(pub.Bytes(), staticKey) {
			t.Fatal("verified binding returned a different key than it signs")
		}
		if !ed25519.Verify(nodeKey, bindingMessage(staticKey), sig) {
			t.Fatal("accepted a binding whose signature does not verify")
		}
		if _, err := bind.Verify(NodeID{1}); err == nil {
			t.Fatal("binding verifies for a node that did not sign it")
		}
	})
}

// FuzzDecodePEM: an accepted file is one block of the wanted type, and
// re-encoding that block gives a file that decodes to the same bytes.
func FuzzDecodePEM(f *testing.F) {
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"a": "b"}, Bytes: []byte{1}}))
	f.Add([]byte("junk\n" + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{9}}))))
	f.Fuzz(func(t *testing.T, data []byte) {
		der, err := decodePEM(data, "CERTIFICATE", "fuzz")
		if err != nil {
			if !errors.Is(err, ErrBadKeyFile) {
				t.Fatalf("error %v is not ErrBadKeyFile", err)
			}
			return
		}
		back, err := decodePEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "CERTIFICATE", "fuzz")
		if err != nil || !bytes.Equal(back, der) {
			t.Fatalf("re-encoded block does not decode back: %v", err)
		}
	})
}

// fuzzNodeKey is a deterministic node key for seeds.
func fuzzNodeKey(tb testing.TB, n byte) NodeKey {
	tb.Helper()
	k, err := NodeKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
