// Package drivertest builds in-process clusters for tests: every node a
// wasm runtime, a real QUIC endpoint on loopback and a migrator, wired the
// way the node service wires them, without membership or a data dir.
package drivertest

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Node is one node of a test cluster.
type Node struct {
	RT  *engine.Runtime
	EP  *meshquic.Endpoint
	Mig *driver.Migrator
	ID  driver.NodeID
	qm  *driver.QUICMesh
}

// Cluster is a set of nodes that know each other's addresses and keys.
type Cluster struct {
	// Drop, when set, swallows migration frames for fault tests: it sees
	// the sending node, the receiver and the frame.
	Drop func(from, to driver.NodeID, frame []byte) bool

	Nodes []*Node
	mu    sync.Mutex
	keys  map[driver.NodeID]*ecdh.PublicKey
}

// New starts n nodes; everything closes at test cleanup. Set
// MIGRATOR_DEBUG=1 to see the migrators' debug logs.
func New(t testing.TB, n int, timing protocol.Timing) *Cluster {
	t.Helper()
	return NewWith(t, n, driver.Config{Timing: timing})
}

// NewWith is New with a migrator configuration template (Runtime, Mesh,
// StaticKey and Logger are filled per node).
func NewWith(t testing.TB, n int, tmpl driver.Config) *Cluster {
	t.Helper()
	return NewOpts(t, n, Options{Migrator: tmpl})
}

// Options configure a test cluster.
type Options struct {
	Migrator driver.Config // template for every node's migrator
	// Hooks, when set, gives node i's runtime its test hooks.
	Hooks func(i int) *engine.TestHooks
	// PeerAddr, when set, maps the address node from dials to reach node
	// to, so a proxy can sit between them (network emulation, faults).
	// It is asked once per ordered pair, after every node listens.
	PeerAddr func(from, to int, addr string) string
}

// NewOpts starts n nodes configured by o.
func NewOpts(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	tmpl := o.Migrator
	ca, err := nodekey.DevCA("drivertest")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{keys: map[driver.NodeID]*ecdh.PublicKey{}}
	for i := 0; i < n; i++ {
		var hooks *engine.TestHooks
		if o.Hooks != nil {
			hooks = o.Hooks(i)
		}
		c.Nodes = append(c.Nodes, c.start(t, ca, i, tmpl, hooks))
	}
	for i, a := range c.Nodes {
		for j, b := range c.Nodes {
			if a != b {
				addr := b.EP.Addr().String()
				if o.PeerAddr != nil {
					addr = o.PeerAddr(i, j, addr)
				}
				a.EP.SetPeerAddr(b.EP.ID(), addr)
			}
		}
	}
	return c
}

func (c *Cluster) start(t testing.TB, ca *nodekey.ClusterCA, i int, cfg driver.Config, hooks *engine.TestHooks) *Node {
	ctx := context.Background()
	rt, err := engine.New(ctx, engine.Config{Hooks: hooks})
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
	static, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nd := &Node{RT: rt, EP: ep, ID: driver.NodeID(ep.ID().String())}
	ep.ServeLocalOps(localOps{nd})
	nd.qm = &driver.QUICMesh{EP: ep, StaticKeyOf: c.staticKey}
	mesh := &faultyMesh{QUICMesh: nd.qm, c: c}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("MIGRATOR_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
	}
	cfg.Runtime, cfg.Mesh, cfg.StaticKey, cfg.Logger = rt, mesh, static, logger
	nd.Mig, err = driver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.qm.Serve(nd.Mig)
	c.mu.Lock()
	c.keys[nd.ID] = static.PublicKey()
	c.mu.Unlock()
	t.Cleanup(nd.Close)
	return nd
}

// Close stops the node (idempotent): a test may kill a node mid-migration.
func (nd *Node) Close() {
	nd.qm.Close()
	nd.Mig.Close()
	nd.EP.Close()
	nd.RT.Close(context.Background())
}

func (c *Cluster) staticKey(node driver.NodeID) (*ecdh.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[node]
	if !ok {
		return nil, fmt.Errorf("no static key for %s", node)
	}
	return k, nil
}

// Send delivers through node via as any node does for a daemon it may not
// host: locally if it is here, else along its route (following "moved").
func Send(ctx context.Context, via *Node, origin uint64, ev engine.Event) ([]engine.Output, error) {
	if d, err := via.RT.Daemon(origin); err == nil {
		return d.Deliver(ctx, ev)
	}
	resp, err := via.EP.RouteDeliver(ctx, meshquic.DeliverRequest{Event: meshquic.Event{Target: origin, Sender: ev.Sender, Seq: ev.Seq, Payload: ev.Payload}})
	if err != nil {
		return nil, err
	}
	return driver.OutputsFromWire(resp.Outputs)
}

// localOps serves remote deliveries and module fetches from the runtime;
// a daemon that moved away answers "moved" so senders follow it.
type localOps struct{ n *Node }

func (o localOps) Deliver(ctx context.Context, req meshquic.DeliverRequest) (meshquic.DeliverResponse, error) {
	d, err := o.n.RT.Daemon(req.Event.Target)
	if err != nil {
		if mv, ok := o.n.EP.Routes().Moved(req.Event.Target); ok {
			return meshquic.DeliverResponse{}, &meshquic.MovedError{Origin: req.Event.Target, To: mv.Node, Epoch: mv.Epoch}
		}
		return meshquic.DeliverResponse{}, fmt.Errorf("%w: %w", meshquic.ErrNotHosted, err)
	}
	outs, err := d.Deliver(ctx, engine.Event{Sender: req.Event.Sender, Seq: req.Event.Seq, Payload: req.Event.Payload})
	if err != nil {
		return meshquic.DeliverResponse{}, err
	}
	resp := meshquic.DeliverResponse{Outputs: make([]meshquic.Output, len(outs))}
	for i, out := range outs {
		resp.Outputs[i] = meshquic.Output{Link: out.Link.AppendBinary(nil), Payload: out.Payload}
	}
	return resp, nil
}

var errNotHere = errors.New("drivertest: not part of the test cluster's operations")

func (o localOps) Spawn(context.Context, meshquic.SpawnRequest) (meshquic.SpawnResponse, error) {
	return meshquic.SpawnResponse{}, errNotHere
}
func (o localOps) Stop(context.Context, meshquic.StopRequest) (meshquic.StopResponse, error) {
	return meshquic.StopResponse{}, errNotHere
}
func (o localOps) Snapshot(context.Context, meshquic.SnapshotRequest) (meshquic.SnapshotResponse, error) {
	return meshquic.SnapshotResponse{}, errNotHere
}
func (o localOps) ModuleBytes(_ context.Context, digest string) ([]byte, error) {
	k, err := o.n.RT.Kind(digest)
	if err != nil {
		return nil, err
	}
	return k.Bytes(), nil
}

// faultyMesh lets a test drop frames on their way out.
type faultyMesh struct {
	*driver.QUICMesh
	c *Cluster
}

func (f *faultyMesh) Send(ctx context.Context, to driver.NodeID, frame []byte) error {
	f.c.mu.Lock()
	drop := f.c.Drop
	f.c.mu.Unlock()
	if drop != nil && drop(f.Self(), to, frame) {
		return nil
	}
	return f.QUICMesh.Send(ctx, to, frame)
}

// SetDrop installs a frame filter (nil removes it).
func (c *Cluster) SetDrop(f func(from, to driver.NodeID, frame []byte) bool) {
	c.mu.Lock()
	c.Drop = f
	c.mu.Unlock()
}

// Mesh is the node's QUIC mesh (without the cluster's frame filter).
func (nd *Node) Mesh() *driver.QUICMesh { return nd.qm }
