package nodekey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNodeIDDerivation(t *testing.T) {
	k, err := GenerateNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte("wasmesh/node-id/v1"), k.Public()...))
	if got, want := k.ID().String(), hex.EncodeToString(sum[:16]); got != want {
		t.Fatalf("id %s, want %s", got, want)
	}
	back, err := ParseNodeID(k.ID().String())
	if err != nil || back != k.ID() {
		t.Fatalf("parse round trip: %v %v", back, err)
	}
	for _, bad := range []string{"", "abc", k.ID().String() + "00", "zz" + k.ID().String()[2:]} {
		if _, err := ParseNodeID(bad); !errors.Is(err, ErrBadNodeID) {
			t.Fatalf("ParseNodeID(%q) = %v", bad, err)
		}
	}
}

func TestKeysPersist(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateNodeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateNodeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() {
		t.Fatal("node key changed across loads")
	}
	fi, err := os.Stat(filepath.Join(dir, NodeKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode().Perm(), err)
	}
	s1, err := LoadOrCreateStaticKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadOrCreateStaticKey(dir)
	if err != nil || !s1.Equal(s2) {
		t.Fatalf("static key changed across loads: %v", err)
	}
	// A key others can read is refused, not silently used.
	if err := os.Chmod(filepath.Join(dir, NodeKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateNodeKey(dir); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("world-readable key: %v", err)
	}
	// Garbage is a typed error.
	if err := os.WriteFile(filepath.Join(dir, StaticKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateStaticKey(dir); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("junk static key: %v", err)
	}
}

func TestStaticKeyBinding(t *testing.T) {
	k, _ := GenerateNodeKey()
	other, _ := GenerateNodeKey()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := k.BindStaticKey(priv.PublicKey())
	pub, err := b.Verify(k.ID())
	if err != nil || !pub.Equal(priv.PublicKey()) {
		t.Fatalf("verify: %v", err)
	}
	if _, err := b.Verify(other.ID()); !errors.Is(err, ErrBadBinding) {
		t.Fatalf("binding accepted for another node: %v", err)
	}
	tampered := b
	tampered.StaticKey = bytes.Clone(b.StaticKey)
	tampered.StaticKey[0] ^= 1
	if _, err := tampered.Verify(k.ID()); !errors.Is(err, ErrBadBinding) {
		t.Fatalf("tampered binding accepted: %v", err)
	}
	// Someone else's signature over our key, claiming our id.
	forged := other.BindStaticKey(priv.PublicKey())
	forged.NodeKey = b.NodeKey
	if _, err := forged.Verify(k.ID()); !errors.Is(err, ErrBadBinding) {
		t.Fatalf("forged binding accepted: %v", err)
	}
}

func TestCAIssueVerifySaveLoad(t *testing.T) {
	ca, err := NewClusterCA()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := GenerateNodeKey()
	c, err := ca.NodeCredentials(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	id, pub, err := VerifyNodeCert([][]byte{c.Cert}, ca.Cert(), time.Now())
	if err != nil || id != k.ID() || !pub.Equal(k.Public()) {
		t.Fatalf("verify: %v %v", id, err)
	}
	other, _ := NewClusterCA()
	if _, _, err := VerifyNodeCert([][]byte{c.Cert}, other.Cert(), time.Now()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("cert from another CA: %v", err)
	}
	if _, _, err := VerifyNodeCert([][]byte{c.Cert}, ca.Cert(), time.Now().Add(NodeCertValidity+time.Hour)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("expired cert: %v", err)
	}

	dir := t.TempDir()
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err == nil {
		t.Fatal("Save overwrote an existing CA key")
	}
	loaded, err := LoadClusterCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded.Cert().Raw, ca.Cert().Raw) {
		t.Fatal("loaded CA differs")
	}
	if fi, _ := os.Stat(filepath.Join(dir, CAKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v", fi.Mode().Perm())
	}
	// A node given only a signed certificate.
	ndir := t.TempDir()
	if err := c.SaveNodeCert(ndir); err != nil {
		t.Fatal(err)
	}
	lc, err := LoadCredentials(ndir, k)
	if err != nil || lc.ID() != k.ID() {
		t.Fatalf("load credentials: %v", err)
	}
	k2, _ := GenerateNodeKey()
	if _, err := LoadCredentials(ndir, k2); !errors.Is(err, ErrBadCert) {
		t.Fatalf("credentials with someone else's cert: %v", err)
	}
}

// A certificate the CA signed but that names a node id other than its
// key's is refused: the id must be provable by the handshake key.
func TestCertNamingAnotherNodeRefused(t *testing.T) {
	ca, _ := NewClusterCA()
	k, _ := GenerateNodeKey()
	victim, _ := GenerateNodeKey()
	u, _ := url.Parse(nodeURIPrefix + victim.ID().String())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(5),
		Subject:      pkix.Name{CommonName: "x"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyNodeCert([][]byte{der}, ca.Cert(), time.Now()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("cert naming another node accepted: %v", err)
	}
	// The CA certificate itself is not a node certificate.
	if _, _, err := VerifyNodeCert([][]byte{ca.Cert().Raw}, ca.Cert(), time.Now()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("CA cert accepted as node: %v", err)
	}
}

func TestDevCADeterministic(t *testing.T) {
	a, err := DevCA("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DevCA("s3cret")
	c, _ := DevCA("other")
	if !bytes.Equal(a.Cert().Raw, b.Cert().Raw) {
		t.Fatal("same secret gave different CA certificates")
	}
	if a.Cert().PublicKey.(ed25519.PublicKey).Equal(c.Cert().PublicKey) {
		t.Fatal("different secrets gave the same CA key")
	}
	if !IsDevCA(a.Cert()) {
		t.Fatal("dev CA not marked")
	}
	nca, _ := NewClusterCA()
	if IsDevCA(nca.Cert()) {
		t.Fatal("real CA marked as dev")
	}
	// A cert from one dev CA instance verifies against the other.
	k, _ := GenerateNodeKey()
	der, _ := a.IssueNodeCert(k.Public())
	if _, _, err := VerifyNodeCert([][]byte{der}, b.Cert(), time.Now()); err != nil {
		t.Fatal(err)
	}
}
