package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/internal/cluster"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// Ports of wasmesh_rejected_packets_total.
const (
	rejectPortQUIC   = "quic"
	rejectPortGossip = "gossip"
)

// newRejectedPackets counts what outsiders send to the node's open ports
// that is refused before any authentication: the log only gets a
// rate-limited line about it, so this is where its volume shows.
func newRejectedPackets() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmesh_rejected_packets_total",
		Help: "Unauthenticated packets or connections refused at the mesh (quic) and gossip ports, by reason.",
	}, []string{"port", "reason"})
	for _, r := range meshquic.RejectReasons() {
		v.WithLabelValues(rejectPortQUIC, r)
	}
	for _, r := range cluster.RejectReasons() {
		v.WithLabelValues(rejectPortGossip, r)
	}
	return v
}

// rejectedCounter is the Rejected hook for the endpoint or membership of
// port.
func (m *Metrics) rejectedCounter(port string) func(reason string) {
	return func(reason string) { m.rejected.WithLabelValues(port, reason).Inc() }
}
