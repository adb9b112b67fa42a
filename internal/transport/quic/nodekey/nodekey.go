package nodekey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
)

// NodeKeyFile is the node key's file name inside the data dir.
const NodeKeyFile = "node.key"

// NodeKey is a node's long-term ed25519 key. It signs the node's TLS
// handshakes and its static key binding; the node id is derived from it.
type NodeKey struct {
	priv ed25519.PrivateKey
}

// GenerateNodeKey creates a fresh node key from crypto/rand.
func GenerateNodeKey() (NodeKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return NodeKey{}, fmt.Errorf("nodekey: generate: %w", err)
	}
	return NodeKey{priv: priv}, nil
}

// NodeKeyFromSeed builds a node key from a 32-byte ed25519 seed.
func NodeKeyFromSeed(seed []byte) (NodeKey, error) {
	if len(seed) != ed25519.SeedSize {
		return NodeKey{}, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadKeyFile, len(seed), ed25519.SeedSize)
	}
	return NodeKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// LoadOrCreateNodeKey loads dir/node.key (PKCS#8 PEM, mode 0600), creating it
// if it does not exist. dir must exist.
func LoadOrCreateNodeKey(dir string) (NodeKey, error) {
	path := filepath.Join(dir, NodeKeyFile)
	return loadOrCreate(path,
		func(data []byte) (NodeKey, error) { return parseNodeKey(data, path) },
		func() (NodeKey, []byte, error) {
			k, err := GenerateNodeKey()
			if err != nil {
				return NodeKey{}, nil, err
			}
			enc, err := k.MarshalPEM()
			return k, enc, err
		})
}

func parseNodeKey(data []byte, path string) (NodeKey, error) {
	der, err := decodePEM(data, "PRIVATE KEY", path)
	if err != nil {
		return NodeKey{}, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return NodeKey{}, fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return NodeKey{}, fmt.Errorf("%w: %s: not an ed25519 key", ErrBadKeyFile, path)
	}
	return NodeKey{priv: priv}, nil
}

// MarshalPEM encodes the key as a PKCS#8 "PRIVATE KEY" PEM block.
func (k NodeKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("nodekey: marshal: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// IsZero reports whether the key is unset.
func (k NodeKey) IsZero() bool { return len(k.priv) == 0 }

// Public returns the ed25519 public key.
func (k NodeKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// PrivateKey returns the private key, for crypto/tls.
func (k NodeKey) PrivateKey() ed25519.PrivateKey { return k.priv }

// ID returns the node id derived from the public key.
func (k NodeKey) ID() NodeID { return NodeIDFromPublic(k.Public()) }

// Sign signs msg with the node key.
func (k NodeKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }
