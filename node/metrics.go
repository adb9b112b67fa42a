package node

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
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
	// Migrations counts migrations by outcome and reason (the protocol's
	// failure reason, snake case; "none" for a success): observeMigration
	// increments it.
	Migrations *prometheus.CounterVec
	// migrationDuration and migrationPause are observed for migrations
	// that succeeded: a failed one's pause is not the daemon's.
	migrationDuration prometheus.Histogram
	migrationPause    prometheus.Histogram
	rejected          *prometheus.CounterVec
}

// Reasons a migration failed that the protocol does not name.
const (
	reasonNone  = "none"  // succeeded
	reasonOther = "other" // not a protocol failure, nor a context's end
)

// migrationReason is the reason label for a failed migration: one of the
// protocol's reasons (a bounded set, wire.Reason) or reasonOther.
func migrationReason(err error) string {
	var f *protocol.Failure
	switch {
	case errors.As(err, &f) && f.Reason.Valid():
		return snakeCase(f.Reason.String())
	case errors.Is(err, context.Canceled):
		return snakeCase(wire.ReasonCancelled.String())
	case errors.Is(err, context.DeadlineExceeded):
		return snakeCase(wire.ReasonTimeout.String())
	}
	return reasonOther
}

// snakeCase turns the reasons' CamelCase names into Prometheus's usual
// label style (NotReadyTimeout → not_ready_timeout).
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// observeMigration records a finished migration: err nil for a success.
// A migration past cutover that has not confirmed is neither (it may
// still complete) and is not counted.
func (m *Metrics) observeMigration(res MigrateResult, err error) {
	switch {
	case errors.Is(err, protocol.ErrPastCutover):
	case err == nil:
		m.Migrations.WithLabelValues(migrationSucceeded, reasonNone).Inc()
		m.migrationDuration.Observe(res.TotalMillis / 1000)
		m.migrationPause.Observe(res.PauseMillis / 1000)
	default:
		reason, outcome := migrationReason(err), migrationFailed
		if reason == snakeCase(wire.ReasonCancelled.String()) {
			outcome = migrationAborted
		}
		m.Migrations.WithLabelValues(outcome, reason).Inc()
	}
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
			Name: "wasmesh_migrations_total", Help: "Live migrations this node orchestrated, by outcome and failure reason (none for a success).",
		}, []string{"outcome", "reason"}),
		migrationDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wasmesh_migration_duration_seconds", Help: "Time from start to confirmed handover of migrations that succeeded.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2.5, 14), // 1ms .. ~150s
		}),
		migrationPause: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wasmesh_migration_pause_seconds", Help: "Time a daemon processed no events while it moved, for migrations that succeeded.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2.5, 13), // 100µs .. ~6s
		}),
	}
	// Every series exists from the start, so rate() sees the first one.
	m.Migrations.WithLabelValues(migrationSucceeded, reasonNone)
	m.Migrations.WithLabelValues(migrationAborted, snakeCase(wire.ReasonCancelled.String()))
	m.Migrations.WithLabelValues(migrationFailed, reasonOther)
	for r := wire.ReasonNotReady; r.Valid(); r++ {
		if r != wire.ReasonCancelled {
			m.Migrations.WithLabelValues(migrationFailed, snakeCase(r.String()))
		}
	}
	m.Registry.MustRegister(m.eventsProcessed, m.eventsFailed, m.eventLatency, m.snapshotBytes, m.checkpoints, m.Migrations,
		m.migrationDuration, m.migrationPause, buildInfo(n.cfg.Version), daemonSeries{n},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
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

// buildInfo is the usual constant 1 whose labels say what runs. version
// is the node's configured version, else the module's.
func buildInfo(version string) prometheus.Collector {
	commit, modVersion := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		modVersion = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				commit = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasmesh_build_info", Help: "Always 1; the labels are the build that runs this node.",
		ConstLabels: prometheus.Labels{
			"version": cmp.Or(version, modVersion, "unknown"), "commit": commit, "goversion": runtime.Version(),
		},
	}, func() float64 { return 1 })
}

// DaemonSeriesLimit bounds the per-daemon series: only the daemons with
// the most events processed get them, so a node with thousands of
// daemons does not make thousands of series per metric.
const DaemonSeriesLimit = 20

var (
	daemonEventsDesc = prometheus.NewDesc("wasmesh_daemon_events_processed_total",
		"Events processed by a daemon on this node (the 20 busiest daemons only).", []string{"daemon"}, nil)
	daemonErrorsDesc = prometheus.NewDesc("wasmesh_daemon_errors_total",
		"Events that failed in a daemon on this node (the 20 busiest daemons only).", []string{"daemon"}, nil)
	daemonMemoryDesc = prometheus.NewDesc("wasmesh_daemon_memory_bytes",
		"Linear memory of a daemon on this node (the 20 busiest daemons only).", []string{"daemon"}, nil)
	daemonCPUDesc = prometheus.NewDesc("wasmesh_daemon_cpu_seconds_total",
		"CPU time of a daemon on this node, sampled (the 20 busiest daemons only).", []string{"daemon"}, nil)
)

// daemonSeries reports per-daemon series for the DaemonSeriesLimit
// daemons with the most events processed. A daemon's counters travel with
// it, so a series that moves to another node continues there.
type daemonSeries struct{ n *Node }

func (daemonSeries) Describe(ch chan<- *prometheus.Desc) {
	ch <- daemonEventsDesc
	ch <- daemonErrorsDesc
	ch <- daemonMemoryDesc
	ch <- daemonCPUDesc
}

func (c daemonSeries) Collect(ch chan<- prometheus.Metric) {
	if c.n.rt == nil {
		return
	}
	type row struct {
		id     string
		events uint64
		errs   uint64
		mem    uint64
		cpu    float64
	}
	var rows []row
	for _, d := range c.n.rt.Daemons() {
		s := d.Stats()
		rows = append(rows, row{d.ID(), s.EventsProcessed, s.Errors, s.MemoryBytes, s.CPUTime.Seconds()})
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(b.events, a.events), strings.Compare(a.id, b.id))
	})
	for _, r := range rows[:min(len(rows), DaemonSeriesLimit)] {
		ch <- prometheus.MustNewConstMetric(daemonEventsDesc, prometheus.CounterValue, float64(r.events), r.id)
		ch <- prometheus.MustNewConstMetric(daemonErrorsDesc, prometheus.CounterValue, float64(r.errs), r.id)
		ch <- prometheus.MustNewConstMetric(daemonMemoryDesc, prometheus.GaugeValue, float64(r.mem), r.id)
		ch <- prometheus.MustNewConstMetric(daemonCPUDesc, prometheus.CounterValue, r.cpu, r.id)
	}
}
