package node

import (
	"slices"
	"strings"
)

// NodeInfo is one cluster member as operators see it.
type NodeInfo struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Address string   `json:"address"` // QUIC
	Gossip  string   `json:"gossip"`
	State   string   `json:"state"`
	Tags    []string `json:"tags"`
	Load    int      `json:"load"`
	Local   bool     `json:"local,omitempty"`
	Version string   `json:"version,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Nodes lists the members this node knows of, itself included.
func (n *Node) Nodes() []NodeInfo {
	var out []NodeInfo
	for _, m := range n.mem.Members() {
		ni := NodeInfo{
			ID: m.Meta.NodeID, Name: m.Name, Address: m.Meta.QUICAddr, Gossip: m.Addr.String(), State: m.State.String(),
			Tags: []string{}, Load: m.Meta.Load, Local: m.Local, Version: m.Meta.Version,
		}
		if m.Leaving && m.State.String() == "alive" {
			ni.State = "leaving"
		}
		if s := m.Meta.Capabilities.String(); s != "" {
			ni.Tags = strings.Split(s, ",")
		}
		if m.MetaErr != nil {
			ni.Error = m.MetaErr.Error()
		}
		if m.Local {
			ni.Load = len(n.rt.Daemons())
		}
		out = append(out, ni)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Kinds lists the modules deployed on this node.
func (n *Node) Kinds() []KindInfo {
	var out []KindInfo
	for _, k := range n.rt.Kinds() {
		out = append(out, n.kindInfo(k))
	}
	slices.SortFunc(out, func(a, b KindInfo) int { return strings.Compare(a.Digest, b.Digest) })
	return out
}
