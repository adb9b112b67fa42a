package nodekey

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
)

// StaticKeyFile is the X25519 static key's file name inside the data dir.
const StaticKeyFile = "static.key"

// BindingDomain prefixes the message a node signs to bind its static key.
const BindingDomain = "wasmesh/static-key-binding/v1\x00"

// LoadOrCreateStaticKey loads dir/static.key (PKCS#8 PEM, mode 0600), the
// node's X25519 key that others seal secrets to (e.g. a migrating daemon's
// identity), creating it if it does not exist.
func LoadOrCreateStaticKey(dir string) (*ecdh.PrivateKey, error) {
	path := filepath.Join(dir, StaticKeyFile)
	return loadOrCreate(path,
		func(data []byte) (*ecdh.PrivateKey, error) {
			der, err := decodePEM(data, "PRIVATE KEY", path)
			if err != nil {
				return nil, err
			}
			k, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
			}
			priv, ok := k.(*ecdh.PrivateKey)
			if !ok || priv.Curve() != ecdh.X25519() {
				return nil, fmt.Errorf("%w: %s: not an X25519 key", ErrBadKeyFile, path)
			}
			return priv, nil
		},
		func() (*ecdh.PrivateKey, []byte, error) {
			priv, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return nil, nil, fmt.Errorf("nodekey: generate static key: %w", err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return nil, nil, fmt.Errorf("nodekey: marshal static key: %w", err)
			}
			return priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
		})
}

// StaticKeyBinding proves that an X25519 public key belongs to a node: the
// node's ed25519 key signs it. Membership gossip carries it, so a sender can
// seal to a node's static key knowing only the node id (authenticated by
// TLS), without trusting whoever relayed the announcement.
type StaticKeyBinding struct {
	// NodeKey is the node's ed25519 public key (its hash is the node id).
	NodeKey []byte `msgpack:"n" json:"node_key"`
	// StaticKey is the X25519 public key.
	StaticKey []byte `msgpack:"x" json:"static_key"`
	// Sig is ed25519(NodeKey, BindingDomain || StaticKey).
	Sig []byte `msgpack:"s" json:"sig"`
}

func bindingMessage(static []byte) []byte {
	return append([]byte(BindingDomain), static...)
}

// BindStaticKey signs pub with the node key.
func (k NodeKey) BindStaticKey(pub *ecdh.PublicKey) StaticKeyBinding {
	static := pub.Bytes()
	return StaticKeyBinding{
		NodeKey:   append([]byte(nil), k.Public()...),
		StaticKey: static,
		Sig:       k.Sign(bindingMessage(static)),
	}
}

// Verify checks that the binding was signed by the key of node want and
// returns the bound X25519 public key. Checking the id, not just the
// signature, matters: any node can sign its own binding, so a binding is only
// useful for the node the caller meant.
func (b StaticKeyBinding) Verify(want NodeID) (*ecdh.PublicKey, error) {
	if len(b.NodeKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: node key is %d bytes", ErrBadBinding, len(b.NodeKey))
	}
	if got := NodeIDFromPublic(b.NodeKey); got != want {
		return nil, fmt.Errorf("%w: signed by node %s, want %s", ErrBadBinding, got, want)
	}
	if !ed25519.Verify(b.NodeKey, bindingMessage(b.StaticKey), b.Sig) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrBadBinding)
	}
	pub, err := ecdh.X25519().NewPublicKey(b.StaticKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBinding, err)
	}
	return pub, nil
}
