package driver

import (
	"context"
	"errors"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"testing"
	"time"

	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

func listenForTest(t *testing.T, ca *nodekey.ClusterCA, maxStreams int64) *meshquic.Endpoint {
	t.Helper()
	key, err := nodekey.GenerateNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := ca.NodeCredentials(key)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := meshquic.Listen(context.Background(), meshquic.Config{Addr: "127.0.0.1:0", Credentials: creds, MaxIncomingStreams: maxStreams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	return ep
}

// TestStreamOpenWaitsNoLongerThanTheSend: a peer that has no stream to
// spare (its limit on concurrent streams reached by other migrations'
// streams) fails a send once the send's context ends, rather than holding
// the migration's lane until a stream frees; once one closes, the send
// goes through.
func TestStreamOpenWaitsNoLongerThanTheSend(t *testing.T) {
	ca, err := nodekey.DevCA("quicmesh-test")
	if err != nil {
		t.Fatal(err)
	}
	a, b := listenForTest(t, ca, 1), listenForTest(t, ca, 1)
	a.SetPeerAddr(b.ID(), b.Addr().String())
	got := make(chan uint64, 8)
	b.Handle(SubMigration, func(_ context.Context, s *meshquic.Stream) error {
		for {
			f, err := s.RecvBytes(nil)
			if err != nil {
				return nil
			}
			got <- frameLane(f)
		}
	})
	q := &QUICMesh{EP: a}
	defer q.Close()
	to := NodeID(b.ID().String())
	send := func(id uint64, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return q.Send(ctx, to, encodePrecopyAck(protocol.PrecopyAck{ID: id}))
	}
	if err := send(1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if id := <-got; id != 1 {
		t.Fatalf("frame of migration %d arrived, want 1", id)
	}
	// Migration 1's stream is open and b allows one: migration 2's
	// stream cannot open.
	if err := send(2, 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send on a peer without a stream to spare: %v, want context.DeadlineExceeded", err)
	}
	q.CloseStream(to, 1)
	if err := send(2, 10*time.Second); err != nil {
		t.Fatalf("send after a stream closed: %v", err)
	}
	if id := <-got; id != 2 {
		t.Fatalf("frame of migration %d arrived, want 2", id)
	}
}
