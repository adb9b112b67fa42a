package nodekey

import (
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Credentials are what a node needs to join the mesh: its key, a certificate
// for that key signed by the cluster CA, and the CA certificate to check
// peers against.
type Credentials struct {
	Key  NodeKey
	Cert []byte // DER node certificate
	CA   *x509.Certificate
}

// ID is the node id of the credentials' key.
func (c Credentials) ID() NodeID { return c.Key.ID() }

// Validate checks that the certificate is for Key, chains to CA and is
// currently valid, so a misconfigured node fails at start rather than at its
// first handshake.
func (c Credentials) Validate() error {
	if c.Key.IsZero() || len(c.Cert) == 0 || c.CA == nil {
		return fmt.Errorf("%w: incomplete credentials", ErrBadCert)
	}
	id, pub, err := VerifyNodeCert([][]byte{c.Cert}, c.CA, time.Now())
	if err != nil {
		return err
	}
	if !pub.Equal(c.Key.Public()) || id != c.Key.ID() {
		return fmt.Errorf("%w: certificate is for node %s, key is node %s", ErrBadCert, id, c.Key.ID())
	}
	return nil
}

// SaveNodeCert writes dir/node.crt and dir/ca.crt (both public).
func (c Credentials) SaveNodeCert(dir string) error {
	if err := writeCertFile(filepath.Join(dir, NodeCertFile), c.Cert); err != nil {
		return err
	}
	return writeCertFile(filepath.Join(dir, CACertFile), c.CA.Raw)
}

// LoadCredentials assembles credentials for key from dir/node.crt and
// dir/ca.crt and validates them.
func LoadCredentials(dir string, key NodeKey) (Credentials, error) {
	ca, err := LoadCACert(dir)
	if err != nil {
		return Credentials{}, err
	}
	der, err := readCertFile(filepath.Join(dir, NodeCertFile))
	if err != nil {
		return Credentials{}, err
	}
	c := Credentials{Key: key, Cert: der, CA: ca}
	if err := c.Validate(); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// VerifyNodeCert checks a peer's certificate chain (leaf first, as TLS
// delivers it) against the cluster CA and returns the node id it proves.
// The id must appear as the URI SAN wasmesh://node/<id> and must equal the
// hash of the certificate's key: a CA mistake cannot make one node's key
// speak for another node's id.
func VerifyNodeCert(rawCerts [][]byte, ca *x509.Certificate, now time.Time) (NodeID, ed25519.PublicKey, error) {
	if len(rawCerts) == 0 {
		return NodeID{}, nil, fmt.Errorf("%w: no certificate presented", ErrNotMember)
	}
	if ca == nil {
		return NodeID{}, nil, fmt.Errorf("%w: no cluster CA configured", ErrNotMember)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return NodeID{}, nil, fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// Intermediates are ignored on purpose: members are signed by the CA
	// directly, and accepting chains would let a member mint members.
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return NodeID{}, nil, fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	if leaf.IsCA {
		return NodeID{}, nil, fmt.Errorf("%w: CA certificate used as node certificate", ErrNotMember)
	}
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return NodeID{}, nil, fmt.Errorf("%w: node key is not ed25519", ErrNotMember)
	}
	want := NodeIDFromPublic(pub)
	var named []string
	for _, u := range leaf.URIs {
		if s := u.String(); strings.HasPrefix(s, nodeURIPrefix) {
			named = append(named, strings.TrimPrefix(s, nodeURIPrefix))
		}
	}
	if len(named) != 1 {
		return NodeID{}, nil, fmt.Errorf("%w: certificate names %d node ids, want 1", ErrNotMember, len(named))
	}
	id, err := ParseNodeID(named[0])
	if err != nil {
		return NodeID{}, nil, fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	if id != want {
		return NodeID{}, nil, fmt.Errorf("%w: certificate names node %s but its key is node %s", ErrNotMember, id, want)
	}
	return id, pub, nil
}
