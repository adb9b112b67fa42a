package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/wasmesh/wasmesh/internal/migration/protocol"
	"github.com/wasmesh/wasmesh/internal/migration/wire"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

func gather(t *testing.T, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := n.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// metricsText is what GET /metrics answers.
func metricsText(t *testing.T, n *Node) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(n.metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.Bytes()
}

// promtoolCheck runs `promtool check metrics` on the exposition when
// promtool is installed (CI installs it and sets WASMESH_REQUIRE_PROMTOOL).
func promtoolCheck(t *testing.T, text []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("WASMESH_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("promtool not on PATH and WASMESH_REQUIRE_PROMTOOL=1")
		}
		t.Log("promtool not on PATH: lint not run")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// A node's metrics after a migration: build info, process and Go
// collectors, the migration counted with its reason and observed in both
// histograms, per-daemon series; and the whole exposition lint-clean.
func TestMetricsAfterMigration(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	b := startTest(t, "b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, a)
	bi := mfs["wasmesh_build_info"]
	if bi == nil || bi.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("wasmesh_build_info: %v", bi)
	}
	if l := labelsOf(bi.GetMetric()[0]); l["goversion"] == "" || l["version"] == "" || l["commit"] == "" {
		t.Fatalf("build info labels %v", l)
	}
	for _, name := range []string{"process_cpu_seconds_total", "go_goroutines", "wasmesh_migration_duration_seconds", "wasmesh_migration_pause_seconds"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for _, name := range []string{"wasmesh_migration_duration_seconds", "wasmesh_migration_pause_seconds"} {
		if h := mfs[name]; h != nil && h.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
			t.Errorf("%s: %d samples, want 1", name, h.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	counted := map[string]float64{}
	for _, m := range mfs["wasmesh_migrations_total"].GetMetric() {
		l := labelsOf(m)
		counted[l["outcome"]+"/"+l["reason"]] = m.GetCounter().GetValue()
	}
	if counted["succeeded/none"] != 1 || counted["failed/not_ready_timeout"] != 0 || len(counted) != 13 {
		t.Fatalf("migrations_total %v", counted)
	}
	// The daemon's series moved with it: on b, with its count.
	var onB float64 = -1
	for _, m := range gather(t, b)["wasmesh_daemon_events_processed_total"].GetMetric() {
		if labelsOf(m)["daemon"] == c.ID {
			onB = m.GetCounter().GetValue()
		}
	}
	if onB != 1 {
		t.Fatalf("daemon series on the target: %v", onB)
	}
	promtoolCheck(t, metricsText(t, a))
	promtoolCheck(t, metricsText(t, b))
}

// Per-daemon series only for the busiest DaemonSeriesLimit daemons.
func TestDaemonSeriesBounded(t *testing.T) {
	ctx := context.Background()
	a := startTest(t, "a", t.TempDir())
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	var busy string
	for i := range DaemonSeriesLimit + 5 {
		d, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: fmt.Sprintf("c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		busy = d.ID
	}
	// The last spawned is the busiest, and the last by id order too
	// unless ids say otherwise: it is in only because of its events.
	send(t, a, busy, "x")
	send(t, a, busy, "x")
	mf := gather(t, a)["wasmesh_daemon_memory_bytes"]
	if got := len(mf.GetMetric()); got != DaemonSeriesLimit {
		t.Fatalf("%d per-daemon series, want %d", got, DaemonSeriesLimit)
	}
	found := false
	for _, m := range gather(t, a)["wasmesh_daemon_events_processed_total"].GetMetric() {
		if labelsOf(m)["daemon"] == busy {
			found = m.GetCounter().GetValue() == 2
		}
	}
	if !found {
		t.Fatal("the busiest daemon has no series (or the wrong count)")
	}
	promtoolCheck(t, metricsText(t, a))
}

func TestMigrationReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&protocol.Failure{Reason: wire.ReasonNotReadyTimeout}, "not_ready_timeout"},
		{fmt.Errorf("x: %w", &protocol.Failure{Reason: wire.ReasonBufferOverflow}), "buffer_overflow"},
		{&protocol.Failure{Reason: wire.Reason(200)}, "other"},
		{context.Canceled, "cancelled"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("boom"), "other"},
	} {
		if got := migrationReason(tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
	m := newMetrics(&Node{})
	m.observeMigration(MigrateResult{}, &protocol.Failure{Reason: wire.ReasonCancelled})
	m.observeMigration(MigrateResult{}, fmt.Errorf("late: %w", protocol.ErrPastCutover))
	// One series per outcome/reason pair, one of them at 1: past cutover
	// did not count.
	var total float64
	ch := make(chan prometheus.Metric, 64)
	m.Migrations.Collect(ch)
	close(ch)
	for mm := range ch {
		var d dto.Metric
		if err := mm.Write(&d); err != nil {
			t.Fatal(err)
		}
		total += d.GetCounter().GetValue()
		if l := labelsOf(&d); l["reason"] == "cancelled" && (l["outcome"] != migrationAborted || d.GetCounter().GetValue() != 1) {
			t.Errorf("cancelled counted as %v %v, want aborted 1", l, d.GetCounter().GetValue())
		}
	}
	if total != 1 {
		t.Fatalf("counted %v, want 1 (past cutover must not count)", total)
	}
	if got := snakeCase("IdentityTransportFailed"); got != "identity_transport_failed" {
		t.Fatalf("snakeCase: %q", got)
	}
}
