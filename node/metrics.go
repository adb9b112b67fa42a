package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wasmesh/wasmesh/internal/migration/driver"
)

// Migration outcomes for the migrations_total counter.
const (
	migrationSucceeded = "succeeded"
	migrationFailed    = "failed"
	migrationAborted   = "aborted"
)

// Metrics holds the node's collectors in a registry of its own: two nodes
// in one process (the demo, tests) must not share or collide on counters.
type Metrics struct {
	Registry        *prometheus.Registry
	eventsProcessed prometheus.Counter
	eventsFailed    prometheus.Counter
	eventLatency    prometheus.Histogram
	snapshotBytes   prometheus.Counter
	checkpoints     prometheus.Counter
	// Migrations counts migrations by outcome; the migration wiring
	// increments it.
	Migrations *prometheus.CounterVec
	rejected   *prometheus.CounterVec
}

func newMetrics(n *Node) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		eventsProcessed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmesh_events_processed_total", Help: "Events processed successfully by daemons on this node.",
		}),
		eventsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmesh_events_failed_total", Help: "Events that failed (trap, timeout, guest error...) on this node.",
		}),
		eventLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wasmesh_event_duration_seconds", Help: "Time to process one event on this node.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12), // 1µs .. ~4s
		}),
		snapshotBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmesh_snapshot_bytes_total", Help: "Bytes of encoded snapshots taken on this node (checkpoints and operator snapshots).",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmesh_checkpoints_total", Help: "Daemon checkpoints written to the store.",
		}),
		Migrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmesh_migrations_total", Help: "Live migrations by outcome.",
		}, []string{"outcome"}),
	}
	for _, o := range []string{migrationSucceeded, migrationFailed, migrationAborted} {
		m.Migrations.WithLabelValues(o)
	}
	m.Registry.MustRegister(m.eventsProcessed, m.eventsFailed, m.eventLatency, m.snapshotBytes, m.checkpoints, m.Migrations,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_daemons", Help: "Daemons running on this node."},
			func() float64 { return float64(len(n.rt.Daemons())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_peers", Help: "Alive cluster members other than this node."},
			func() float64 {
				if n.mem == nil {
					return 0
				}
				return float64(len(n.peers()))
			}),
		failedGauge(n),
		collectors.NewGoCollector(),
	)
	m.Registry.MustRegister(migratorGauges(n)...)
	m.rejected = newRejectedPackets()
	m.Registry.MustRegister(m.rejected)
	return m
}

// migratorGauges show what the migrator holds (driver.Resources), so an
// operator can see it return to zero after migrations.
func migratorGauges(n *Node) []prometheus.Collector {
	res := func(f func(driver.Resources) float64) func() float64 {
		return func() float64 {
			if n.mig == nil {
				return 0
			}
			return f(n.mig.Resources())
		}
	}
	g := func(name, help string, f func(driver.Resources) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, res(f))
	}
	return []prometheus.Collector{
		g("wasmesh_migrator_runs", "Migrations with state on this node, running or lingering.",
			func(r driver.Resources) float64 { return float64(r.Runs) }),
		g("wasmesh_migrator_handles", "Migrations this node orchestrated and still remembers.",
			func(r driver.Resources) float64 { return float64(r.Handles) }),
		g("wasmesh_migrator_staged", "Pre-copied bases staged or being received on this node.",
			func(r driver.Resources) float64 { return float64(r.Staged + r.PreCopyIn) }),
		g("wasmesh_migrator_bases", "Pre-copy base snapshots held on this node as a source.",
			func(r driver.Resources) float64 { return float64(r.Bases) }),
		g("wasmesh_migrator_inbound_bytes", "Inbound migration memory reserved on this node (transfers and staged bases).",
			func(r driver.Resources) float64 { return float64(r.InboundBytes) }),
		g("wasmesh_migrator_staged_bytes", "The part of wasmesh_migrator_inbound_bytes held by staged pre-copy bases.",
			func(r driver.Resources) float64 { return float64(r.StagedBytes) }),
		g("wasmesh_migrator_inbound_budget_bytes", "Node-wide cap on inbound migration memory.",
			func(r driver.Resources) float64 { return float64(r.InboundBudget) }),
	}
}
