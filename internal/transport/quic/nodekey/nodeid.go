// Package nodekey holds a wasmesh node's long-term keys and cluster
// credentials: the ed25519 node key and the node id derived from it, the
// X25519 static key used to seal secrets to the node (and its signed
// binding), and the cluster CA that certifies members for mutual TLS.
//
// Nothing here opens a socket; the QUIC endpoint in the parent package turns
// Credentials into a TLS configuration.
package nodekey

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// NodeIDDomain separates node-id derivation from every other hash of a key.
const NodeIDDomain = "wasmesh/node-id/v1"

// NodeIDSize is the length of a node id in bytes.
const NodeIDSize = 16

// NodeID names a node. It is derived from the node's ed25519 public key:
//
//	id = SHA-256( "wasmesh/node-id/v1" || pubkey )[0:16]
//
// and written as 32 lowercase hex digits. Because it is a hash of the key,
// whoever proves possession of the key (the TLS handshake does) proves the id;
// a certificate that names a different id than its key's is refused.
type NodeID [NodeIDSize]byte

// Errors; test with errors.Is.
var (
	ErrBadNodeID  = errors.New("nodekey: bad node id")
	ErrBadKeyFile = errors.New("nodekey: bad key file")
	ErrBadCert    = errors.New("nodekey: bad certificate")
	ErrNotMember  = errors.New("nodekey: peer is not a cluster member")
	ErrBadBinding = errors.New("nodekey: bad static key binding")
)

// NodeIDFromPublic derives the node id of an ed25519 public key.
func NodeIDFromPublic(pub ed25519.PublicKey) NodeID {
	h := sha256.New()
	h.Write([]byte(NodeIDDomain))
	h.Write(pub)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var id NodeID
	copy(id[:], sum[:NodeIDSize])
	return id
}

// String renders the id as 32 lowercase hex digits.
func (id NodeID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero value (no node).
func (id NodeID) IsZero() bool { return id == NodeID{} }

// MarshalText implements encoding.TextMarshaler (JSON, logs).
func (id NodeID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *NodeID) UnmarshalText(b []byte) error {
	v, err := ParseNodeID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseNodeID parses the 32-hex-digit form produced by String.
func ParseNodeID(s string) (NodeID, error) {
	var id NodeID
	if len(s) != 2*NodeIDSize {
		return id, fmt.Errorf("%w: %q: want %d hex digits", ErrBadNodeID, s, 2*NodeIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return NodeID{}, fmt.Errorf("%w: %q: not hex", ErrBadNodeID, s)
	}
	// hex.Decode also takes uppercase digits; only the lowercase form String
	// produces is accepted, because node ids are compared and looked up as
	// text (gossip metadata, migration frames), where "AB…" != "ab…".
	if id.String() != s {
		return NodeID{}, fmt.Errorf("%w: %q: not lowercase hex", ErrBadNodeID, s)
	}
	return id, nil
}
