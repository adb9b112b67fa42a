package node

import (
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/wasmesh/wasmesh/internal/cluster"
)

// NodeInfo is one cluster member as operators see it.
type NodeInfo struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Address string   `json:"address"`         // QUIC
	Admin   string   `json:"admin,omitempty"` // admin API URL, as the node announces it
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
			Tags: []string{}, Load: m.Meta.Load, Local: m.Local, Version: m.Meta.Version, Admin: m.Meta.AdminURL,
		}
		if m.Leaving && m.State.String() == "alive" {
			ni.State = "leaving"
		}
		if m.Meta.Draining && ni.State == "alive" {
			ni.State = "draining"
		}
		if m.State == cluster.StateAlive && !m.Verified && m.MetaErr == nil {
			// Knows the gossip secret but has not proved a certificate of
			// the cluster CA: listed so operators see it, never given work.
			ni.State = "unverified"
		}
		if s := m.Meta.Capabilities.String(); s != "" {
			ni.Tags = strings.Split(s, ",")
		}
		if m.MetaErr != nil {
			ni.Error = m.MetaErr.Error()
		}
		if m.Local {
			ni.Load = len(n.rt.Daemons())
			ni.Admin = n.AdminURL()
			if n.draining.Load() && ni.State == "alive" {
				ni.State = "draining"
			}
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

// AdminURL is the admin API's URL as announced to peers ("" before Ready).
func (n *Node) AdminURL() string {
	if p := n.adminURL.Load(); p != nil {
		return *p
	}
	return ""
}

// announceAdmin makes the admin URL peers can dial out of the one the API
// is bound to: an unspecified host becomes the advertised QUIC host.
func (n *Node) announceAdmin(adminURL string) {
	u, err := url.Parse(adminURL)
	if err != nil || u.Host == "" {
		return
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		if qh, _, err := net.SplitHostPort(n.QUICAddr()); err == nil {
			u.Host = net.JoinHostPort(qh, port)
		}
	}
	s := u.Scheme + "://" + u.Host
	if (cluster.NodeMeta{NodeID: "x", AdminURL: s}).Validate() != nil {
		n.log.Warn("admin url not announced: it does not fit the gossip metadata", "url", s)
		return
	}
	n.adminURL.Store(&s)
	n.kickMeta()
}
