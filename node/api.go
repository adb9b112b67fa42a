package node

import (
	"github.com/wasmesh/wasmesh/host"
	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// The types of Config and Node whose implementation lives in internal
// packages, named here so an embedder can build a Config and read a Node
// without importing them (issue 13: a small public API).
type (
	// Capabilities are the tags and key=value pairs a node announces and
	// placement requirements match against (Config.Tags).
	Capabilities = cluster.Capabilities
	// Timing tunes gossip probes and intervals (Config.Timing).
	Timing = cluster.Timing
	// NodeID is a node's id, derived from its node key.
	NodeID = nodekey.NodeID
	// Limits box in every daemon a node runs (Config.Limits).
	Limits = host.Limits
)

// ParseCapabilities parses tags as the CLI's --tag does: "gpu",
// "zone=eu-1", or several comma-separated in one item.
func ParseCapabilities(items ...string) (Capabilities, error) {
	return cluster.ParseCapabilities(items...)
}

// FastTiming is the gossip timing --dev uses: quick failure detection on
// one machine or a LAN.
func FastTiming() Timing { return cluster.FastTiming() }
