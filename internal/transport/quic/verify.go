package meshquic

import (
	"context"
	"fmt"
)

// Verify proves that the node announced as id at addr holds a certificate
// of this cluster's CA for id: it runs a mutual TLS handshake there (the
// same check every mesh connection makes) and closes the connection.
// Gossip membership only proves the gossip secret; a member is trusted
// with work once this succeeded. A node proving another id than announced
// fails with ErrUnauthenticated too.
func (e *Endpoint) Verify(ctx context.Context, id NodeID, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	conn, got, err := e.dialOnce(ctx, addr)
	if err != nil {
		return err
	}
	_ = conn.CloseWithError(0, "verified")
	if got != id {
		return fmt.Errorf("%w: %s answered as %s, announced as %s", ErrUnauthenticated, addr, got, id)
	}
	return nil
}
