package meshquic

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// ALPN is the application protocol negotiated on every mesh connection; a
// peer speaking anything else fails the handshake.
const ALPN = "wasmesh/1"

// tlsCert turns credentials into the certificate TLS presents.
func tlsCert(c nodekey.Credentials) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Cert}, PrivateKey: c.Key.PrivateKey()}
}

// verifyMember is the whole of peer authentication: the chain must lead to
// the cluster CA and the certificate must prove a node id. crypto/tls runs
// it inside the handshake, so a non-member never gets as far as opening a
// stream. (Whether the member reached is the node a caller meant is checked
// per call, since one connection serves every caller of an address.)
func verifyMember(ca *x509.Certificate) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		_, _, err := nodekey.VerifyNodeCert(raw, ca, time.Now())
		return err
	}
}

func serverTLS(c nodekey.Credentials) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{tlsCert(c)},
		// RequireAnyClientCert plus VerifyPeerCertificate rather than
		// RequireAndVerifyClientCert: the standard verifier would accept
		// chains through intermediates and knows nothing of node ids.
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: verifyMember(c.CA),
		NextProtos:            []string{ALPN},
	}
}

func clientTLS(c nodekey.Credentials) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{tlsCert(c)},
		// Hostname verification does not apply (peers are named by node
		// id, not DNS); verifyMember replaces it and runs on every
		// handshake despite this flag.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyMember(c.CA),
		NextProtos:            []string{ALPN},
		ServerName:            "wasmesh",
	}
}

// peerID reads the authenticated node id from a completed handshake.
func peerID(cs tls.ConnectionState) (NodeID, error) {
	if len(cs.PeerCertificates) == 0 {
		return NodeID{}, fmt.Errorf("%w: no peer certificate", ErrUnauthenticated)
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return NodeID{}, fmt.Errorf("%w: peer key is not ed25519", ErrUnauthenticated)
	}
	return nodekey.NodeIDFromPublic(pub), nil
}
