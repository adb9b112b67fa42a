package node

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// DevSecret is the shared string every --dev node derives its cluster CA and
// gossip key from. INSECURE by design: anyone who reads this source can join.
const DevSecret = "wasmesh INSECURE dev cluster"

// Config configures a node. DataDir, ListenAddr, GossipAddr and a credential
// source (Dev, or ClusterSecret plus certificates in the data dir or CADir)
// are required; everything else has a default.
type Config struct {
	DataDir    string
	Name       string   // gossip member name; default "node-" + first 8 hex of the node id
	ListenAddr string   // QUIC host:port ("127.0.0.1:0" picks a port)
	GossipAddr string   // memberlist host:port
	Join       []string // gossip addresses of existing members
	Tags       Capabilities

	// AdvertiseAddr is the QUIC host:port announced to peers, when they must
	// reach this node at another address than the bound one (a NAT, a
	// relay, a fault proxy); "" announces the bound address.
	AdvertiseAddr string

	// Dev derives the cluster CA and gossip key from DevSecret.
	Dev bool
	// ClusterSecret is the gossip encryption key material (at least 16
	// bytes; hashed to a 32-byte AES key). Required unless Dev.
	ClusterSecret []byte
	// CADir holds ca.crt and ca.key; when set, the node issues its own
	// certificate into the data dir. Otherwise DataDir must hold node.crt and
	// ca.crt already.
	CADir string

	// CheckpointInterval is how often daemons that processed events are
	// checkpointed into the store; 0 means DefaultCheckpointInterval, a
	// negative value disables periodic checkpoints (shutdown still does one).
	CheckpointInterval time.Duration
	// Durability says when an event is acknowledged: DurabilitySync (the
	// default) once it is in the fsynced journal, DurabilityInterval as
	// soon as it ran (a crash loses up to one checkpoint interval).
	Durability Durability
	Limits     Limits
	// ChannelQueue bounds the undelivered messages a channel homed here
	// keeps per subscriber; a publish past it blocks (then fails with
	// ErrChannelFull). 0 means 1024.
	ChannelQueue int
	Timing       Timing // zero: FastTiming when Dev, else memberlist LAN defaults
	Logger       *slog.Logger
	Version      string
}

// DefaultCheckpointInterval bounds how much journal a restart replays
// (and, with DurabilityInterval, what a crash can lose).
const DefaultCheckpointInterval = 2 * time.Second

// Durability is when a node acknowledges an event.
type Durability string

const (
	// DurabilitySync acknowledges an event once it is in the node's
	// write-ahead journal on disk (group commit: one fdatasync covers every
	// event that arrived meanwhile). A kill -9 loses nothing acknowledged.
	DurabilitySync Durability = "sync"
	// DurabilityInterval acknowledges an event as soon as it ran; the state
	// reaches the disk with the next checkpoint, so a crash loses up to one
	// --checkpoint-interval of acknowledged events.
	DurabilityInterval Durability = "interval"
)

// ParseDurability reads a --durability value.
func ParseDurability(s string) (Durability, error) {
	switch d := Durability(s); d {
	case DurabilitySync, DurabilityInterval:
		return d, nil
	}
	return "", fmt.Errorf("%w: durability %q: want sync or interval", ErrBadConfig, s)
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, fmt.Errorf("%w: a data dir is required", ErrBadConfig)
	}
	if c.ListenAddr == "" || c.GossipAddr == "" {
		return c, fmt.Errorf("%w: listen and gossip addresses are required", ErrBadConfig)
	}
	if c.AdvertiseAddr != "" {
		if _, port, err := splitHostPort(c.AdvertiseAddr); err != nil || port == 0 || strings.HasPrefix(c.AdvertiseAddr, ":") {
			return c, fmt.Errorf("%w: advertise address %q: want HOST:PORT with a host and a non-zero port", ErrBadConfig, c.AdvertiseAddr)
		}
	}
	if !c.Dev && len(c.ClusterSecret) < 16 {
		return c, fmt.Errorf("%w: a cluster secret of at least 16 bytes is required (or --dev for an insecure local cluster)", ErrBadConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.Durability == "" {
		c.Durability = DurabilitySync
	}
	if _, err := ParseDurability(string(c.Durability)); err != nil {
		return c, err
	}
	if c.Timing == (cluster.Timing{}) && c.Dev {
		c.Timing = cluster.FastTiming()
	}
	if err := c.Tags.Validate(); err != nil {
		return c, fmt.Errorf("%w: tags: %w", ErrBadConfig, err)
	}
	return c, nil
}

func (c Config) credentials(key nodekey.NodeKey, layout layout) (nodekey.Credentials, error) {
	switch {
	case c.Dev:
		ca, err := nodekey.DevCA(DevSecret)
		if err != nil {
			return nodekey.Credentials{}, err
		}
		return ca.NodeCredentials(key)
	case c.CADir != "":
		ca, err := nodekey.LoadClusterCA(c.CADir)
		if err != nil {
			return nodekey.Credentials{}, fmt.Errorf("%w: cluster CA: %w", ErrBadConfig, err)
		}
		creds, err := ca.NodeCredentials(key)
		if err != nil {
			return nodekey.Credentials{}, err
		}
		if err := creds.SaveNodeCert(layout.root); err != nil {
			return nodekey.Credentials{}, err
		}
		return creds, nil
	default:
		creds, err := nodekey.LoadCredentials(layout.root, key)
		if err != nil {
			return nodekey.Credentials{}, fmt.Errorf("%w: node certificate: %w (give --ca DIR holding the cluster CA, or use --dev)", ErrBadConfig, err)
		}
		return creds, nil
	}
}
