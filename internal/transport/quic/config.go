package meshquic

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// NodeID names a node; see nodekey.NodeID.
type NodeID = nodekey.NodeID

// Config configures an Endpoint. Zero durations and sizes take the defaults
// below, which are tuned for a data-centre mesh: a dead peer is noticed in
// seconds, not minutes.
type Config struct {
	// Addr is the UDP address to listen on and dial from, e.g. ":7946" or
	// "127.0.0.1:0".
	Addr string
	// Credentials prove this node's membership and say whom to trust.
	Credentials nodekey.Credentials
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// Rejected, if set, is called once per packet or connection from
	// outside the cluster that the endpoint dropped (see RejectReasons);
	// the log only gets a rate-limited line about them.
	Rejected func(reason string)
	// MaxFrame bounds one frame in both directions (default 16 MiB).
	MaxFrame int
	// DialTimeout bounds one connection attempt (default 2 s).
	DialTimeout time.Duration
	// KeepAlivePeriod keeps idle connections alive and lets loss of a peer
	// be detected (default 1 s).
	KeepAlivePeriod time.Duration
	// MaxIdleTimeout closes a connection that received nothing this long
	// (default 5 s): the bound on noticing a peer that vanished.
	MaxIdleTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait after a failed dial during
	// which calls to that peer fail fast (defaults 100 ms, 5 s; doubling).
	BackoffMin, BackoffMax time.Duration
	// HeaderTimeout bounds how long a peer may take to send a stream's
	// header frame (default 5 s), so idle streams cannot pile up.
	HeaderTimeout time.Duration
	// MaxRedirects bounds how many "moved" answers a delivery follows
	// (default 2).
	MaxRedirects int
	// MaxModuleSize caps FetchModule (default 64 MiB).
	MaxModuleSize int64
	// MaxIncomingStreams bounds concurrent requests per peer (default 256).
	MaxIncomingStreams int64
}

// Default values for Config.
const (
	DefaultDialTimeout        = 2 * time.Second
	DefaultKeepAlivePeriod    = time.Second
	DefaultMaxIdleTimeout     = 5 * time.Second
	DefaultBackoffMin         = 100 * time.Millisecond
	DefaultBackoffMax         = 5 * time.Second
	DefaultHeaderTimeout      = 5 * time.Second
	DefaultMaxRedirects       = 2
	DefaultMaxModuleSize      = 64 << 20
	DefaultMaxIncomingStreams = 256
)

func (c Config) withDefaults() (Config, error) {
	if err := c.Credentials.Validate(); err != nil {
		return c, fmt.Errorf("meshquic: credentials: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.MaxFrame > 1<<31-1 {
		return c, fmt.Errorf("meshquic: MaxFrame %d exceeds the 32-bit length prefix", c.MaxFrame)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.KeepAlivePeriod, DefaultKeepAlivePeriod)
	def(&c.MaxIdleTimeout, DefaultMaxIdleTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.HeaderTimeout, DefaultHeaderTimeout)
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.MaxRedirects <= 0 {
		c.MaxRedirects = DefaultMaxRedirects
	}
	if c.MaxModuleSize <= 0 {
		c.MaxModuleSize = DefaultMaxModuleSize
	}
	if c.MaxIncomingStreams <= 0 {
		c.MaxIncomingStreams = DefaultMaxIncomingStreams
	}
	return c, nil
}
