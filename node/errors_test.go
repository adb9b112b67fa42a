package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

// sentinels is every error the node's API tells apart; each must have its
// own row in the table.
var sentinels = []error{
	node.ErrBadRequest, node.ErrTooLarge, node.ErrUnauthorized, node.ErrRefused, node.ErrMigration,
	node.ErrEventFailed, node.ErrDaemonFailed, node.ErrDaemonNotFound, node.ErrUnknownKind, node.ErrUnknownNode, node.ErrNoMatch,
	node.ErrNoIdentity, node.ErrAmbiguous, node.ErrNameTaken, node.ErrShuttingDown, node.ErrUnavailable,
	node.ErrDraining, node.ErrChannelNotFound, node.ErrChannelExists, node.ErrChannelFull,
	node.ErrNotPermitted, node.ErrNotSubscribed,
}

// TestErrorTableIsOneToOne: every sentinel has exactly one row, classifies
// as its own row even wrapped, and its code leads back to it.
func TestErrorTableIsOneToOne(t *testing.T) {
	codes := map[string]bool{}
	rows := 0
	for _, c := range node.ErrorClasses() {
		if codes[c.Code] {
			t.Errorf("code %q used twice", c.Code)
		}
		codes[c.Code] = true
		if c.Exit != 1 && c.Exit != 2 {
			t.Errorf("%s: exit %d", c.Code, c.Exit)
		}
		if c.HTTP < 400 || c.HTTP > 599 {
			t.Errorf("%s: HTTP %d", c.Code, c.HTTP)
		}
		if c.Sentinel != nil {
			rows++
		}
	}
	if rows != len(sentinels) {
		t.Errorf("table has %d sentinel rows, want %d", rows, len(sentinels))
	}
	for _, s := range sentinels {
		c := node.ClassOf(fmt.Errorf("context: %w", s))
		if c.Sentinel != s {
			t.Errorf("%v classifies as %q", s, c.Code)
		}
		back, ok := node.ClassByCode(c.Code)
		if !ok || back.Sentinel != s {
			t.Errorf("code %q leads back to %v", c.Code, back.Sentinel)
		}
	}
	if c := node.ClassOf(errors.New("something else")); c.Code != node.CodeInternal || c.HTTP != 500 {
		t.Errorf("unclassified error: %+v", c)
	}
}

func startPair(t *testing.T) (a, b *node.Node) {
	t.Helper()
	start := func(name string, join ...string) *node.Node {
		n, err := node.New(context.Background(), node.Config{
			DataDir: t.TempDir(), Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join,
			Dev: true, CheckpointInterval: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(context.Background()) })
		return n
	}
	a = start("a")
	b = start("b", a.GossipAddr())
	deadline := time.Now().Add(10 * time.Second)
	// Alive is not enough: a member is a target only once it proved its
	// certificate (listed "unverified" until then).
	for !node.Knows(a, b) || !node.Knows(b, a) || !pairAlive(a, "b") || !pairAlive(b, "a") {
		if time.Now().After(deadline) {
			t.Fatal("a and b do not see each other")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return a, b
}

// pairAlive reports whether n lists the member name alive (verified).
func pairAlive(n *node.Node, name string) bool {
	for _, m := range n.Nodes() {
		if m.Name == name {
			return m.State == "alive"
		}
	}
	return false
}

// relayBackend is node a's admin API, except that GET /v1/daemons/{ref}
// answers with what a got from asking b.
type relayBackend struct {
	*node.Node
	relay func(context.Context) error
}

func (r relayBackend) Daemon(ctx context.Context, _ string) (node.DaemonInfo, error) {
	return node.DaemonInfo{}, r.relay(ctx)
}

// TestRelayedErrorsKeepTheirClass: node b fails, node a relays the failure
// over the mesh, a's admin API answers it, and a's admin client sees the
// same sentinel with the table's HTTP status and exit status, b's reason
// in the message once, and which node failed.
func TestRelayedErrorsKeepTheirClass(t *testing.T) {
	ctx := context.Background()
	a, b := startPair(t)
	for i, s := range sentinels {
		want := node.ClassOf(s)
		t.Run(want.Code, func(t *testing.T) {
			reason := "the reason " + want.Code
			cause := fmt.Errorf("%w: %s", s, reason)
			if s == node.ErrMigration {
				// A migration error carries the migrator's reason.
				cause = fmt.Errorf("%w: %w: 00000000000000aa", node.ErrMigration, driver.ErrAlreadyMigrating)
				reason = "already migrating"
			}
			relay := node.RelayFailure(a, b, fmt.Sprintf("test/fail/%d", i), cause)
			err := relay(ctx)
			if !errors.Is(err, s) {
				t.Fatalf("a got %v, not %v", err, s)
			}
			srv := httptest.NewServer(admin.Handler(relayBackend{Node: a, relay: relay}, admin.Options{}))
			defer srv.Close()
			c, err := admin.NewClient(srv.URL, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Stats(ctx, "x")
			var ae *admin.APIError
			if !errors.As(err, &ae) || !errors.Is(err, s) {
				t.Fatalf("client got %#v, not %v", err, s)
			}
			if ae.Status != want.HTTP || ae.Code != want.Code || ae.ExitCode() != want.Exit {
				t.Fatalf("client got HTTP %d %q exit %d, want %d %q exit %d", ae.Status, ae.Code, ae.ExitCode(), want.HTTP, want.Code, want.Exit)
			}
			if strings.Count(ae.Message, reason) != 1 || !strings.Contains(ae.Message, "on node b") {
				t.Fatalf("message %q: want %q once and the node", ae.Message, reason)
			}
		})
	}
}

// TestRelayedRequestsKeepTheirClass: real requests that node a hands to
// node b, which refuses them, keep b's reason on a's admin client.
func TestRelayedRequestsKeepTheirClass(t *testing.T) {
	ctx := context.Background()
	a, _ := startPair(t)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, node.SpawnRequest{Kind: "counter", Name: "c", On: "b"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.Handler(a, admin.Options{}))
	defer srv.Close()
	c, err := admin.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, sentinel error, status int, words string) {
		t.Helper()
		var ae *admin.APIError
		if !errors.As(err, &ae) || !errors.Is(err, sentinel) || ae.Status != status {
			t.Fatalf("%s: got %#v, want %v with HTTP %d", what, err, sentinel, status)
		}
		t.Logf("%s: %s", what, ae.Message)
		if !strings.Contains(ae.Message, words) || !strings.Contains(ae.Message, "on node b") {
			t.Fatalf("%s: message %q lacks %q or the node", what, ae.Message, words)
		}
	}
	// b hosts c, so b resolves the target and refuses.
	_, err = c.Migrate(ctx, "c", admin.MigrateBody{To: "nosuch"}, nil)
	check("migrate to an unknown node", err, node.ErrUnknownNode, http.StatusNotFound, `"nosuch"`)
	_, err = c.Migrate(ctx, "c", admin.MigrateBody{Require: "gpu"}, nil)
	check("migrate to a filter nothing matches", err, node.ErrNoMatch, http.StatusNotFound, `"gpu" unmet`)
	_, err = c.Spawn(ctx, admin.SpawnRequest{Kind: "counter", Name: "c", On: "b"})
	check("spawn a taken name", err, node.ErrNameTaken, http.StatusConflict, `"c"`)
	_, err = c.Spawn(ctx, admin.SpawnRequest{Kind: "sha256:" + strings.Repeat("0", 64), On: "b"})
	check("spawn a module nobody has", err, node.ErrUnknownKind, http.StatusNotFound, "sha256:0000")
}
