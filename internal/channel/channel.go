// Package channel is the protocol core of wasmesh channels: a sans-I/O state
// machine for the channels homed on one node, the rendezvous choice of a
// channel's home, and the wire codec of the messages nodes exchange about
// channels. Nothing here opens a socket, starts a goroutine or reads a clock:
// the node feeds inputs (with the time they happened) and sends the outputs.
// See README.md for the exactly-once argument and how a node wires it.
package channel

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// NodeID names a node; channels use the transport's ids so the node can hand
// them over without conversion.
type NodeID = nodekey.NodeID

// MaxNameLen bounds a channel name in bytes.
const MaxNameLen = 255

// Errors; test with errors.Is.
var (
	ErrBadName         = errors.New("channel: bad channel name")
	ErrChannelNotFound = errors.New("channel: no such channel")
	ErrChannelExists   = errors.New("channel: channel exists with a different definition")
	ErrChannelFull     = errors.New("channel: a subscriber's queue is full")
	ErrNotPermitted    = errors.New("channel: not permitted")
	ErrNotSubscribed   = errors.New("channel: not subscribed")
	// ErrOutOfOrder refuses a publish whose Prev is not the last seq the home
	// accepted from that publisher: an earlier message is still in flight
	// or was lost, and accepting this one would reorder or (once the earlier
	// one arrives and is judged a duplicate) lose it. Resend in order.
	ErrOutOfOrder = errors.New("channel: publish out of order")
	ErrTooLarge   = errors.New("channel: payload too large")
	ErrLimit      = errors.New("channel: limit reached")
	ErrBadDef     = errors.New("channel: bad definition")
	ErrBadState   = errors.New("channel: bad handoff state")
)

// ValidName checks a channel name: one or more '/'-separated segments, each a
// non-empty run of [a-z0-9._-], at most MaxNameLen bytes in all. Segments "."
// and ".." are refused so a name can never be read as a relative path.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBadName, len(name), MaxNameLen)
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q: byte %#x at %d", ErrBadName, name, c, i)
			}
			continue
		}
		seg := name[start:i]
		if seg == "" {
			return fmt.Errorf("%w: %q: empty segment at %d", ErrBadName, name, start)
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q: segment %q", ErrBadName, name, seg)
		}
		start = i + 1
	}
	return nil
}

// Home picks the node that homes a channel by rendezvous (highest random
// weight) hashing: every member gets a weight sha256(name, member) and the
// heaviest wins. A member leaving only moves the channels it had won; every
// other channel keeps its home, so membership churn does not reshuffle the
// mesh. Returns the zero NodeID for no members.
func Home(name string, members []NodeID) NodeID {
	var best NodeID
	var bestW [sha256.Size]byte
	found := false
	for _, m := range members {
		w := weight(name, m)
		if !found || cmpWeight(w, bestW, m, best) > 0 {
			best, bestW, found = m, w, true
		}
	}
	return best
}

func weight(name string, m NodeID) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte("wasmesh/channel/home/v1\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(m[:])
	var w [sha256.Size]byte
	h.Sum(w[:0])
	return w
}

// cmpWeight orders by weight, then by node id so equal weights (never seen in
// practice) still give one answer whatever the member order.
func cmpWeight(a, b [sha256.Size]byte, an, bn NodeID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] > b[i] {
				return 1
			}
			return -1
		}
	}
	for i := range an {
		if an[i] != bn[i] {
			if an[i] > bn[i] {
				return 1
			}
			return -1
		}
	}
	return 0
}

// StreamID names one home's sequence of a channel. A channel re-homed (or its
// home restarted with a new incarnation) starts a new stream whose seqs start
// over, so a subscriber's horizon is kept per stream, never per channel.
// Like client sender ids it is a domain-separated hash, so it can share the
// daemon's per-sender horizon with origins and clients.
// epoch counts the handoffs the channel's state went through (0 when
// created): a channel handed A→B→A within one incarnation of A must not
// reuse A's first stream, whose seqs subscribers already hold.
func StreamID(name string, home NodeID, incarnation, epoch uint64) uint64 {
	h := sha256.New()
	h.Write([]byte("wasmesh/channel/stream/v1\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(home[:])
	var n [16]byte
	binary.BigEndian.PutUint64(n[:], incarnation)
	binary.BigEndian.PutUint64(n[8:], epoch)
	h.Write(n[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	id := binary.BigEndian.Uint64(sum[:8])
	if id == 0 {
		// 0 is the node's anonymous sender, whose events are never
		// deduplicated; a stream is a sender in the daemon's horizon.
		id = 1
	}
	return id
}

// Scope is what a token must permit.
type Scope uint8

// Scopes the machine asks for.
const (
	ScopeSubscribe Scope = iota + 1
	ScopePublish
)

func (s Scope) String() string {
	switch s {
	case ScopeSubscribe:
		return "subscribe"
	case ScopePublish:
		return "publish"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Authorizer decides whether subject may act on a restricted channel. The
// machine calls it only for restricted channels; open channels admit anyone.
// An adapter over internal/token verifies token against def.Trusted with
// {Subject: subject, Scope: scope, Channel: def.Name, Now: now}; now is the
// input's time, so the machine stays clock-free. Whatever it returns is
// wrapped in ErrNotPermitted.
type Authorizer interface {
	Allow(def Definition, subject [32]byte, scope Scope, token []byte, now time.Time) error
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(def Definition, subject [32]byte, scope Scope, token []byte, now time.Time) error

// Allow calls f.
func (f AuthorizerFunc) Allow(def Definition, subject [32]byte, scope Scope, token []byte, now time.Time) error {
	return f(def, subject, scope, token, now)
}

// MaxTrusted bounds the issuer keys a restricted channel trusts.
const MaxTrusted = 64

// Definition is what a channel was created with.
type Definition struct {
	Name       string
	Restricted bool
	// Trusted are the ed25519 issuer keys whose tokens a restricted channel
	// accepts; empty for an open channel.
	Trusted [][32]byte
}

// Validate checks the name and that only restricted channels trust keys.
func (d Definition) Validate() error {
	if err := ValidName(d.Name); err != nil {
		return err
	}
	if !d.Restricted && len(d.Trusted) > 0 {
		return fmt.Errorf("%w: open channel %q lists trusted keys", ErrBadDef, d.Name)
	}
	if d.Restricted && len(d.Trusted) == 0 {
		return fmt.Errorf("%w: restricted channel %q trusts no issuer", ErrBadDef, d.Name)
	}
	if len(d.Trusted) > MaxTrusted {
		return fmt.Errorf("%w: %d trusted keys (max %d)", ErrBadDef, len(d.Trusted), MaxTrusted)
	}
	return nil
}

// Equal reports whether two definitions are the same; the order of trusted
// keys does not matter, so re-creating with the keys listed differently is
// still the identical re-create.
func (d Definition) Equal(o Definition) bool {
	if d.Name != o.Name || d.Restricted != o.Restricted || len(d.Trusted) != len(o.Trusted) {
		return false
	}
	seen := make(map[[32]byte]int, len(d.Trusted))
	for _, k := range d.Trusted {
		seen[k]++
	}
	for _, k := range o.Trusted {
		if seen[k] == 0 {
			return false
		}
		seen[k]--
	}
	return true
}

func (d Definition) clone() Definition {
	d.Trusted = append([][32]byte(nil), d.Trusted...)
	return d
}
