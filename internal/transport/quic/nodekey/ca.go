package nodekey

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names of cluster credentials.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
)

// Validity periods. Node certificates are long-lived because a node given
// only a signed certificate (no CA key) cannot renew it; operators who want
// short-lived certificates hand nodes the CA key, or re-issue out of band.
const (
	CAValidity       = 20 * 365 * 24 * time.Hour
	NodeCertValidity = 5 * 365 * 24 * time.Hour
	// clockSkew back-dates NotBefore so a node whose clock runs slightly
	// behind the issuer's still accepts a fresh certificate.
	clockSkew = time.Hour
)

// devCAName marks a DevCA certificate so nodes can warn loudly about it.
const devCAName = "wasmesh INSECURE dev cluster CA"

// nodeURIPrefix is the URI SAN that names a node: wasmesh://node/<id>.
const nodeURIPrefix = "wasmesh://node/"

// ClusterCA certifies cluster members. Holding its key is what it means to be
// able to admit nodes.
type ClusterCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

// NewClusterCA creates a fresh CA with a random key.
func NewClusterCA() (*ClusterCA, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nodekey: generate CA key: %w", err)
	}
	now := time.Now()
	return newCA(key, "wasmesh cluster CA", randomSerial(), now.Add(-clockSkew), now.Add(CAValidity))
}

// DevCA derives a CA deterministically from secret, so every node started
// with the same --dev secret shares one cluster without distributing files.
//
// INSECURE: anyone who knows or guesses the secret can mint member
// certificates. It exists for tests and local clusters only.
func DevCA(secret string) (*ClusterCA, error) {
	seed, err := hkdf.Key(sha256.New, []byte(secret), []byte("wasmesh/dev-ca/v1"), "ca-key", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("nodekey: derive dev CA: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	// Fixed serial and dates make the certificate byte-identical on every
	// node (ed25519 signatures are deterministic).
	pubSum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	serial := new(big.Int).SetBytes(pubSum[:16])
	notBefore := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return newCA(key, devCAName, serial, notBefore, notBefore.Add(100*365*24*time.Hour))
}

func randomSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return new(big.Int).SetBytes(b[:])
}

func newCA(key ed25519.PrivateKey, name string, serial *big.Int, notBefore, notAfter time.Time) (*ClusterCA, error) {
	pub := key.Public().(ed25519.PublicKey)
	skid := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("nodekey: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("nodekey: parse CA certificate: %w", err)
	}
	return &ClusterCA{cert: cert, key: key}, nil
}

// Cert returns the CA certificate (what every node trusts).
func (ca *ClusterCA) Cert() *x509.Certificate { return ca.cert }

// IsDevCA reports whether cert is a DevCA certificate.
func IsDevCA(cert *x509.Certificate) bool {
	return cert != nil && cert.Subject.CommonName == devCAName
}

// IssueNodeCert certifies the node key pub: the certificate carries pub and
// the URI SAN wasmesh://node/<id>, and is good for both TLS roles.
func (ca *ClusterCA) IssueNodeCert(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: node key is %d bytes", ErrBadCert, len(pub))
	}
	id := NodeIDFromPublic(pub)
	u, err := url.Parse(nodeURIPrefix + id.String())
	if err != nil {
		return nil, fmt.Errorf("nodekey: node uri: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: id.String()},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(NodeCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("nodekey: issue node certificate: %w", err)
	}
	return der, nil
}

// NodeCredentials issues a certificate for key and bundles it with the CA
// certificate.
func (ca *ClusterCA) NodeCredentials(key NodeKey) (Credentials, error) {
	der, err := ca.IssueNodeCert(key.Public())
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Key: key, Cert: der, CA: ca.cert}, nil
}

// Save writes dir/ca.crt (0644) and dir/ca.key (0600). It refuses to
// overwrite an existing key: replacing a CA silently expels every member.
func (ca *ClusterCA) Save(dir string) error {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("nodekey: marshal CA key: %w", err)
	}
	if err := writeSecretFile(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return fmt.Errorf("nodekey: save CA key: %w", err)
	}
	return writeCertFile(filepath.Join(dir, CACertFile), ca.cert.Raw)
}

// LoadClusterCA reads dir/ca.crt and dir/ca.key and checks they match.
func LoadClusterCA(dir string) (*ClusterCA, error) {
	cert, err := LoadCACert(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, CAKeyFile)
	data, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("nodekey: load CA key: %w", err)
	}
	der, err := decodePEM(data, "PRIVATE KEY", path)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok || !key.Public().(ed25519.PublicKey).Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s does not match %s", ErrBadKeyFile, CAKeyFile, CACertFile)
	}
	return &ClusterCA{cert: cert, key: key}, nil
}

// LoadCACert reads dir/ca.crt, for nodes that hold a signed certificate but
// not the CA key.
func LoadCACert(dir string) (*x509.Certificate, error) {
	der, err := readCertFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCert, CACertFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrBadCert, CACertFile)
	}
	if _, ok := cert.PublicKey.(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%w: %s: CA key is not ed25519", ErrBadCert, CACertFile)
	}
	return cert, nil
}

func writeCertFile(path string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("nodekey: save %s: %w", filepath.Base(path), err)
	}
	return nil
}

func readCertFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nodekey: load %s: %w", filepath.Base(path), err)
	}
	return decodePEM(data, "CERTIFICATE", path)
}
