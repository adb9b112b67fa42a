package meshquic

import (
	"errors"
	"testing"
	"time"
)

func TestVerifyProvesTheClusterCertificate(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	other := newEndpoint(t, newCA(t))
	ctx := ctxTimeout(t, 10*time.Second)
	if err := a.Verify(ctx, b.ID(), b.Addr().String()); err != nil {
		t.Fatalf("member of the same CA: %v", err)
	}
	if err := a.Verify(ctx, other.ID(), other.Addr().String()); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("node of another CA: %v, want ErrUnauthenticated", err)
	}
	// A real member's address announced under another node's id.
	if err := a.Verify(ctx, other.ID(), b.Addr().String()); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong id at a member's address: %v, want ErrUnauthenticated", err)
	}
}
