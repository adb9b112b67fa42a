package node

import "github.com/prometheus/client_golang/prometheus"

// registerJournalMetrics exposes the input journal's counters; a node in
// DurabilityInterval has no journal and no such series.
func (n *Node) registerJournalMetrics() {
	j := n.wal
	if j == nil {
		return
	}
	n.metrics.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wasmesh_journal_bytes_total",
			Help: "Bytes appended to the input journal."},
			func() float64 { return float64(j.Stats().Appended) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wasmesh_journal_fsyncs_total",
			Help: "Group commits of the input journal (one fdatasync each)."},
			func() float64 { return float64(j.Stats().Fsyncs) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_journal_segments",
			Help: "Segment files the input journal holds on disk."},
			func() float64 { return float64(j.Stats().Segments) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_journal_failed",
			Help: "1 once a journal write failed: the node no longer acknowledges events."},
			func() float64 {
				if j.Err() != nil {
					return 1
				}
				return 0
			}),
	)
}
