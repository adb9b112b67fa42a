// Package node is a wasmesh node as a service: it owns the data dir, the
// embedded store of daemon records and snapshots, checkpointing and restart
// recovery, and wires the host runtime to the cluster membership and the
// QUIC mesh so that any node can deliver to, spawn on, stop and snapshot any
// daemon in the cluster. The admin HTTP API (node/admin) sits on top.
package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
	"github.com/wasmesh/wasmesh/internal/wal"
)

// Node is one running wasmesh node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	layout  layout
	key     nodekey.NodeKey
	id      nodekey.NodeID
	name    string
	store   *store.Store
	rt      *engine.Runtime
	ep      *meshquic.Endpoint
	mem     *cluster.Membership
	metrics *Metrics
	meta    cluster.NodeMeta // template; Load is filled at publish time
	mig     *driver.Migrator
	qmesh   *driver.QUICMesh
	// wal is the write-ahead journal of inputs (nil with DurabilityInterval
	// once recovery is over): an event is acknowledged after it is durable.
	wal *wal.Journal
	// recoveryJournal is the journal as opened at startup until what it
	// held from before the restart is redone (see releaseRecoveryJournal).
	recoveryJournal *wal.Journal

	// mu serialises changes to the set of daemons (spawn, stop, restore)
	// so name uniqueness and record state stay consistent with the runtime.
	mu sync.Mutex
	// ckptMu guards recoveryJournal.
	ckptMu sync.Mutex
	// ckptStripes serialise the checkpoints of one daemon, so its store
	// sequence order is capture order, and make an arrival's first record
	// atomic with a stop of the same daemon. Striped by origin rather than
	// one lock: daemons arriving together (a drain) then share fsyncs in
	// the store's group commit instead of queueing for one each.
	ckptStripes [64]sync.Mutex
	// deployMu makes a deploy's kind-name check and its registration one
	// step, so two deploys cannot both pass the check and re-point a name.
	deployMu sync.Mutex
	// lastCkpt remembers each daemon's input sequence at its last
	// checkpoint, so idle daemons are not rewritten every interval.
	lastCkpt sync.Map // origin -> uint64

	eventSeq atomic.Uint64
	// outputs pools the buffers events run into before their outputs are
	// copied out (runLocal) or encoded (the pipeline's Apply).
	outputs  sync.Pool
	metaKick chan struct{}
	// listings is each peer's last listing, for when it stops answering.
	listings peerListings
	// moved keeps the names of daemons that migrated away (addressing.go);
	// adminURL is the admin API's URL once it serves, for the gossip meta.
	moved movedNames
	// resolved remembers which daemon a name found on a peer, so the next
	// send by that name goes straight to its route instead of asking every
	// peer (and waiting for the slowest) again (mesh.go locate).
	resolved movedNames
	adminURL atomic.Pointer[string]
	// activity lists the migrations and drain running now (activity.go).
	activity activity
	// draining mirrors the store's flag (drain.go): spawns and inbound
	// migrations are refused while it is set.
	draining atomic.Bool
	// drainRunning keeps a second drain from racing the first over the
	// same daemons.
	drainRunning atomic.Bool
	// dir is this node's part of the location directory (directory.go).
	dir *dirState

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeMu   sync.Mutex
	closed    bool
	recovered int
	missing   missingModules // records waiting for their module (modules_missing.go)
	failed    failedDaemons  // records whose recovery failed at startup (failed.go)
	outbox    *deliverer     // delivers the daemons' send messages (outbox.go)
	// Channels: the home side (channels_home.go), the subscriber side
	// (channels_sub.go), the replicated definitions (chandefs.go) and the
	// node's own publisher sequences (channels.go).
	chHome *chanHome
	chSubs *chanSubs
	chDefs *chanDefs
	chPubs chanPubs
	// chShadows are the replicas of channels homed on the nodes this one
	// is the successor of (channels_replica.go).
	chShadows shadows
}

// New starts a node: data dir, store, runtime with recovered daemons, mesh
// endpoint, cluster membership and background loops. Close stops it.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, layout: layout{root: cfg.DataDir}, metaKick: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.eventSeq.Store(uint64(time.Now().UnixNano()))
	n.outputs.New = func() any { return new(engine.Outputs) }
	var cleanup []func()
	defer func() {
		if err != nil {
			n.cancel()
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if err := n.layout.create(); err != nil {
		return nil, err
	}
	n.key, err = nodekey.LoadOrCreateNodeKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%w: node key: %w", ErrBadConfig, err)
	}
	n.id = n.key.ID()
	static, err := nodekey.LoadOrCreateStaticKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%w: static key: %w", ErrBadConfig, err)
	}
	creds, err := cfg.credentials(n.key, n.layout)
	if err != nil {
		return nil, err
	}
	n.name = cfg.Name
	if n.name == "" {
		n.name = "node-" + n.id.String()[:8]
	}
	n.log = n.log.With("node", n.name)

	n.store, err = store.Open(n.layout.store())
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { n.store.Close() })
	n.metrics = newMetrics(n)

	// The journal is read even with DurabilityInterval: events a previous
	// run acknowledged under DurabilitySync must not be lost by a switch.
	journal, journaled, err := wal.Open(n.layout.journal(), wal.Options{Logger: n.log.With("component", "journal")})
	if err != nil {
		return nil, fmt.Errorf("%w: journal: %w", ErrBadConfig, err)
	}
	cleanup = append(cleanup, func() { journal.Close() })
	n.outbox = newDeliverer(n)
	n.metrics.Registry.MustRegister(n.outbox.collectors()...)
	n.chHome, n.chSubs, n.chDefs = newChanHome(n), newChanSubs(n), newChanDefs(n, n.layout.channels())
	n.metrics.Registry.MustRegister(n.chHome.collectors()...)
	n.metrics.Registry.MustRegister(n.chSubs.received)
	if err := n.chDefs.load(); err != nil {
		return nil, err
	}
	hcfg := engine.Config{CacheDir: n.layout.cache(), Logger: n.log, Limits: cfg.Limits, OnSends: n.outbox.wake,
		// Channels exist: any daemon may publish (a restricted channel
		// still wants a token its home verifies).
		DefaultGrants: engine.Grants{Publish: true}}
	if cfg.Durability == DurabilitySync {
		n.wal = journal
		hcfg.Journal = journal
	}
	n.rt, err = engine.New(ctx, hcfg)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { n.rt.Close(context.Background()) })
	if err := n.loadModules(ctx); err != nil {
		return nil, err
	}
	if err := n.rt.Start(ctx); err != nil {
		return nil, err
	}
	if err := n.recover(ctx, journaled); err != nil {
		return nil, err
	}
	if err := n.finishJournalRecovery(ctx, journal); err != nil {
		return nil, err
	}
	n.registerJournalMetrics()

	n.ep, err = meshquic.Listen(n.ctx, meshquic.Config{Addr: cfg.ListenAddr, Credentials: creds, Logger: n.log.With("component", "mesh"),
		Rejected: n.metrics.rejectedCounter(rejectPortQUIC)})
	if err != nil {
		return nil, fmt.Errorf("%w: --listen %s: %w", ErrBadConfig, cfg.ListenAddr, err)
	}
	cleanup = append(cleanup, func() { n.ep.Close() })
	n.serveMesh()
	n.serveChannels()
	if err := n.startMigrator(static); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { n.qmesh.Close(); n.mig.Close() })

	ghost, gport, err := splitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: --gossip: %w", ErrBadConfig, err)
	}
	binding := n.key.BindStaticKey(static.PublicKey())
	n.meta = cluster.NodeMeta{
		NodeID:             n.id.String(),
		QUICAddr:           cmp.Or(cfg.AdvertiseAddr, advertised(n.ep.Addr(), ghost)),
		X25519Public:       binding.StaticKey,
		X25519Signature:    binding.Sig,
		NodeKey:            binding.NodeKey,
		Capabilities:       cfg.Tags.Normalize(),
		Version:            cfg.Version,
		MigrationSupported: true,
	}
	if err := n.loadDraining(); err != nil {
		return nil, err
	}
	meta := n.meta
	meta.Draining = n.draining.Load()
	meta.Load = len(n.rt.Daemons())
	secret := cfg.ClusterSecret
	if cfg.Dev {
		secret = []byte(DevSecret)
	}
	gossipKey := sha256.Sum256(append([]byte("wasmesh/gossip-key/v1:"), secret...))
	n.mem, err = n.join(ctx, cluster.Config{
		Name: n.name, BindAddr: ghost, BindPort: gport, SecretKey: gossipKey[:],
		Meta: meta, Logger: n.log.With("component", "gossip"), Seeds: cfg.Join, Timing: cfg.Timing,
		Rejected: n.metrics.rejectedCounter(rejectPortGossip),
		Verify:   n.verifyMember,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { n.mem.Shutdown() })

	n.wg.Add(3)
	go n.watchMembers()
	go n.publishMeta()
	go n.checkpointLoop()
	n.wg.Add(1)
	go n.refreshListings()
	// Its first scan picks up the outboxes recovered above.
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.outbox.run(n.ctx) }()
	n.startChannels()
	n.startModuleFetch()
	if cfg.Dev {
		n.log.Warn("INSECURE: --dev cluster credentials are derived from a public string; anyone can join this cluster. Use only on a trusted machine.")
	}
	return n, nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

// advertised is the QUIC address peers should dial: the bound one, with an
// unspecified host replaced by the gossip host when that one is specific.
func advertised(a net.Addr, gossipHost string) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	if ap.Addr().IsUnspecified() {
		if ip, err := netip.ParseAddr(gossipHost); err == nil && !ip.IsUnspecified() {
			return netip.AddrPortFrom(ip, ap.Port()).String()
		}
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
	}
	return ap.String()
}

// ID is the node id; Name the member name.
func (n *Node) ID() NodeID   { return n.id }
func (n *Node) Name() string { return n.name }

// QUICAddr and GossipAddr are the bound addresses.
func (n *Node) QUICAddr() string   { return n.meta.QUICAddr }
func (n *Node) GossipAddr() string { return n.mem.LocalAddr().String() }

// Metrics is the node's Prometheus registry and collectors.
func (n *Node) Metrics() *Metrics { return n.metrics }

// ReadyInfo is written to DATA/node.json once the node serves, so scripts
// (and tests) that asked for port 0 learn the real addresses.
type ReadyInfo struct {
	NodeID   string `json:"node_id"`
	Name     string `json:"name"`
	QUIC     string `json:"quic"`
	Gossip   string `json:"gossip"`
	AdminURL string `json:"admin_url"`
	PID      int    `json:"pid"`

	// QUICListen is the bound QUIC address when QUIC is another one
	// (--advertise).
	QUICListen string `json:"quic_listen,omitempty"`
}

// Ready records that the node serves its admin API at adminURL.
func (n *Node) Ready(adminURL string) error {
	n.announceAdmin(adminURL)
	info := ReadyInfo{NodeID: n.id.String(), Name: n.name, QUIC: n.QUICAddr(), Gossip: n.GossipAddr(), AdminURL: adminURL, PID: os.Getpid()}
	if n.cfg.AdvertiseAddr != "" {
		info.QUICListen = n.ep.Addr().String()
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	tmp := n.layout.readyFile() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, n.layout.readyFile()); err != nil {
		return err
	}
	n.log.Info("node ready", "id", info.NodeID, "quic", info.QUIC, "gossip", info.Gossip, "admin", adminURL,
		"daemons", len(n.rt.Daemons()), "recovered", n.recovered)
	return nil
}

// ReadReady reads DATA/node.json.
func ReadReady(dataDir string) (ReadyInfo, error) {
	var info ReadyInfo
	b, err := os.ReadFile(layout{root: dataDir}.readyFile())
	if err != nil {
		return info, err
	}
	err = json.Unmarshal(b, &info)
	return info, err
}

// Close checkpoints every daemon, leaves the cluster, and releases
// everything. It is idempotent.
func (n *Node) Close(ctx context.Context) error {
	n.closeMu.Lock()
	if n.closed {
		n.closeMu.Unlock()
		return nil
	}
	n.closed = true
	n.closeMu.Unlock()
	_ = os.Remove(n.layout.readyFile())
	ck := n.checkpointAll(ctx, true)
	n.log.Info("checkpointed daemons on shutdown", "daemons", ck)
	n.chHome.leave(ctx)
	if err := n.mem.Leave(ctx, 2*time.Second); err != nil {
		n.log.Debug("leave not confirmed", "err", err)
	}
	n.cancel()
	n.wg.Wait()
	n.qmesh.Close()
	n.mig.Close()
	var errs []error
	errs = append(errs, n.mem.Shutdown(), n.ep.Close(), n.rt.Close(ctx))
	if n.wal != nil {
		errs = append(errs, n.wal.Close())
	} else if j := n.recoveryJournal; j != nil {
		errs = append(errs, j.Close()) // still held for a daemon awaiting its module
	}
	errs = append(errs, n.store.Close())
	return errors.Join(errs...)
}

// join joins the cluster, retrying for a few seconds when the seeds do not
// answer yet (nodes started together), and says which flag was at fault.
func (n *Node) join(ctx context.Context, cfg cluster.Config) (*cluster.Membership, error) {
	const attempts = 10
	for i := 1; ; i++ {
		m, err := cluster.Join(ctx, cfg)
		switch {
		case err == nil:
			return m, nil
		case !errors.Is(err, cluster.ErrJoin):
			return nil, fmt.Errorf("%w: --gossip %s: %w", ErrBadConfig, n.cfg.GossipAddr, err)
		case i == attempts || ctx.Err() != nil:
			// One line: memberlist's reason is a multi-line "1 error
			// occurred" block that repeats the seed's address.
			return nil, &classError{class: ErrUnavailable, cause: err, msg: fmt.Sprintf("%v: --join %s: no member answered after %d attempts: %s",
				ErrUnavailable, strings.Join(cfg.Seeds, ","), i, joinReason(err))}
		}
		n.log.Info("cluster seeds not answering yet; retrying", "join", cfg.Seeds, "attempt", i)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// ckptLock is the lock of origin's checkpoints (see ckptStripes).
func (n *Node) ckptLock(origin uint64) *sync.Mutex {
	return &n.ckptStripes[origin%uint64(len(n.ckptStripes))]
}
