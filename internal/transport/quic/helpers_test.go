package meshquic

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

func newCA(t testing.TB) *nodekey.ClusterCA {
	t.Helper()
	ca, err := nodekey.NewClusterCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func creds(t testing.TB, ca *nodekey.ClusterCA) nodekey.Credentials {
	t.Helper()
	k, err := nodekey.GenerateNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.NodeCredentials(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testConfig is tuned so failure paths finish in well under a second.
func testConfig(c nodekey.Credentials) Config {
	return Config{
		Addr:           "127.0.0.1:0",
		Credentials:    c,
		DialTimeout:    500 * time.Millisecond,
		BackoffMin:     50 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		MaxIdleTimeout: 2 * time.Second,
	}
}

func listen(t testing.TB, cfg Config) *Endpoint {
	t.Helper()
	e, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newEndpoint(t testing.TB, ca *nodekey.ClusterCA) *Endpoint {
	t.Helper()
	return listen(t, testConfig(creds(t, ca)))
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// fakeOps is a LocalOps over a map of hosted daemons and modules.
type fakeOps struct {
	mu      sync.Mutex
	hosted  map[uint64]bool
	modules map[string][]byte
	peers   []NodeID
	calls   atomic.Int64
}

func newFakeOps() *fakeOps {
	return &fakeOps{hosted: map[uint64]bool{}, modules: map[string][]byte{}}
}

func (f *fakeOps) seen(ctx context.Context) {
	f.calls.Add(1)
	if p, ok := PeerFromContext(ctx); ok {
		f.mu.Lock()
		f.peers = append(f.peers, p)
		f.mu.Unlock()
	}
}

func (f *fakeOps) Deliver(ctx context.Context, req DeliverRequest) (DeliverResponse, error) {
	f.seen(ctx)
	f.mu.Lock()
	hosted := f.hosted[req.Event.Target]
	f.mu.Unlock()
	if !hosted {
		return DeliverResponse{}, ErrNotHosted
	}
	// Echo the payload back as one output with a genesis-following link.
	l := chain.Next(chain.Genesis(req.Event.Target), chain.GenesisHash(req.Event.Target), 0)
	return DeliverResponse{Outputs: []Output{{Link: l.AppendBinary(nil), Payload: req.Event.Payload}}}, nil
}

func (f *fakeOps) Spawn(ctx context.Context, req SpawnRequest) (SpawnResponse, error) {
	f.seen(ctx)
	return SpawnResponse{Origin: 42, Epoch: 1}, nil
}

func (f *fakeOps) Stop(ctx context.Context, req StopRequest) (StopResponse, error) {
	f.seen(ctx)
	return StopResponse{}, nil
}

func (f *fakeOps) Snapshot(ctx context.Context, req SnapshotRequest) (SnapshotResponse, error) {
	f.seen(ctx)
	return SnapshotResponse{Snapshot: []byte("snap")}, nil
}

func (f *fakeOps) ModuleBytes(ctx context.Context, digest string) ([]byte, error) {
	f.seen(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.modules[digest]
	if !ok {
		return nil, ErrNotFound
	}
	return m, nil
}

func wantErr(t *testing.T, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", targets)
	}
	for _, tg := range targets {
		if !errors.Is(err, tg) {
			t.Fatalf("error %v does not match %v", err, tg)
		}
	}
}

type echo struct {
	Msg  string `msgpack:"m"`
	From string `msgpack:"f"`
}

// handleEcho registers a unary echo that reports who called it.
func handleEcho(e *Endpoint, ran *atomic.Int64) {
	e.Handle("test/echo", Unary(func(ctx context.Context, peer NodeID, req echo) (echo, error) {
		if ran != nil {
			ran.Add(1)
		}
		return echo{Msg: req.Msg, From: peer.String()}, nil
	}))
}
