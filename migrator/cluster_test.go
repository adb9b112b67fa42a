package migrator_test

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/host/identity"
	"github.com/wasmesh/wasmesh/migration"
	"github.com/wasmesh/wasmesh/migrator"
	meshquic "github.com/wasmesh/wasmesh/transport/quic"
	"github.com/wasmesh/wasmesh/transport/quic/nodekey"
)

// testNode is one node of an in-process cluster: a wasm runtime, a real
// QUIC endpoint, and a migrator, wired the way the node service wires them.
type testNode struct {
	rt     *host.Runtime
	ep     *meshquic.Endpoint
	mig    *migrator.Migrator
	static *ecdh.PrivateKey
	id     migrator.NodeID
}

type testCluster struct {
	nodes []*testNode
	keys  map[migrator.NodeID]*ecdh.PublicKey
	mu    sync.Mutex
}

// localOps serves remote deliveries and module fetches from the runtime;
// a daemon that moved away answers "moved" so senders follow it.
type localOps struct{ n *testNode }

func (o localOps) Deliver(ctx context.Context, req meshquic.DeliverRequest) (meshquic.DeliverResponse, error) {
	d, err := o.n.rt.Daemon(req.Event.Target)
	if err != nil {
		if mv, ok := o.n.ep.Routes().Moved(req.Event.Target); ok {
			return meshquic.DeliverResponse{}, &meshquic.MovedError{Origin: req.Event.Target, To: mv.Node, Epoch: mv.Epoch}
		}
		return meshquic.DeliverResponse{}, err
	}
	outs, err := d.Deliver(ctx, host.Event{Sender: req.Event.Sender, Seq: req.Event.Seq, Payload: req.Event.Payload})
	if err != nil {
		return meshquic.DeliverResponse{}, err
	}
	resp := meshquic.DeliverResponse{Outputs: make([]meshquic.Output, len(outs))}
	for i, out := range outs {
		resp.Outputs[i] = meshquic.Output{Link: out.Link.AppendBinary(nil), Payload: out.Payload}
	}
	return resp, nil
}

func (o localOps) Spawn(context.Context, meshquic.SpawnRequest) (meshquic.SpawnResponse, error) {
	return meshquic.SpawnResponse{}, errors.New("not in this test")
}
func (o localOps) Stop(context.Context, meshquic.StopRequest) (meshquic.StopResponse, error) {
	return meshquic.StopResponse{}, errors.New("not in this test")
}
func (o localOps) Snapshot(context.Context, meshquic.SnapshotRequest) (meshquic.SnapshotResponse, error) {
	return meshquic.SnapshotResponse{}, errors.New("not in this test")
}
func (o localOps) ModuleBytes(_ context.Context, digest string) ([]byte, error) {
	k, err := o.n.rt.Kind(digest)
	if err != nil {
		return nil, err
	}
	return k.Bytes(), nil
}

func newCluster(t testing.TB, n int, timing migration.Timing) *testCluster {
	t.Helper()
	ca, err := nodekey.DevCA("migrator-test")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{keys: map[migrator.NodeID]*ecdh.PublicKey{}}
	for i := 0; i < n; i++ {
		ctx := context.Background()
		rt, err := host.New(ctx, host.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		key, err := nodekey.GenerateNodeKey()
		if err != nil {
			t.Fatal(err)
		}
		creds, err := ca.NodeCredentials(key)
		if err != nil {
			t.Fatal(err)
		}
		ep, err := meshquic.Listen(ctx, meshquic.Config{Addr: "127.0.0.1:0", Credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		static, err := ecdh.X25519().GenerateKey(randReader{})
		if err != nil {
			t.Fatal(err)
		}
		tn := &testNode{rt: rt, ep: ep, static: static, id: migrator.NodeID(ep.ID().String())}
		ep.ServeLocalOps(localOps{tn})
		qm := &migrator.QUICMesh{EP: ep, StaticKeyOf: c.staticKey}
		logger := slog.New(slog.DiscardHandler)
		if os.Getenv("MIGRATOR_DEBUG") != "" {
			logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
		}
		mig, err := migrator.New(migrator.Config{Runtime: rt, Mesh: qm, StaticKey: static, Timing: timing, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		qm.Serve(mig)
		tn.mig = mig
		c.nodes = append(c.nodes, tn)
		c.keys[tn.id] = static.PublicKey()
		t.Cleanup(func() {
			qm.Close()
			mig.Close()
			ep.Close()
			rt.Close(context.Background())
		})
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.ep.SetPeerAddr(b.ep.ID(), b.ep.Addr().String())
			}
		}
	}
	return c
}

func (c *testCluster) staticKey(node migrator.NodeID) (*ecdh.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[node]
	if !ok {
		return nil, fmt.Errorf("no static key for %s", node)
	}
	return k, nil
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Read(p)
}

func counterModule(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "counter-wat", "counter-wat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spawnCounter(t *testing.T, n *testNode) (*host.Daemon, identity.Identity) {
	t.Helper()
	k, err := n.rt.RegisterModule(context.Background(), counterModule(t), "counter")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := identity.Generate()
	d, err := n.rt.Spawn(context.Background(), string(k.Digest), id, host.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d, id
}

func fixtureBytes(t testing.TB, dir, file string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "plugins", "examples", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newIdentity(t testing.TB) identity.Identity {
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
