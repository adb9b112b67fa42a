package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/wasmesh/wasmesh/node"
)

// browserPath finds Debian's Chromium. Without one the test skips, unless
// WASMESH_REQUIRE_BROWSER=1 (CI installs it) makes that a failure.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WASMESH_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium found and WASMESH_REQUIRE_BROWSER=1 (apt-get install chromium)")
	}
	t.Skip("no chromium browser installed (apt-get install chromium); the dashboard test needs one")
	return ""
}

// TestDashboardInBrowser drives the dashboard in headless Chromium the way
// an operator would: it signs in with the admin token, sees a daemon
// appear after a spawn, moves it to the other node with the page's own
// button and sees the node column change, all without a console error.
func TestDashboardInBrowser(t *testing.T) {
	chrome := browserPath(t)
	tok := filepath.Join(t.TempDir(), "token")
	const secret = "dashboard-token-0123456789"
	if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "alpha", t.TempDir(), "--admin-token-file", tok)
	b := startNode(t, "beta", t.TempDir(), "--admin-token-file", tok, "--join", a.info.Gossip, "--tag", "zone=test")
	eventually(t, 15*time.Second, "membership", func() (bool, string) {
		r := cli(t, "", "nodes", "--json", "--node", a.url(), "--token-file", tok)
		var ns []node.NodeInfo
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
			return false, r.String()
		}
		alive := 0
		for _, n := range ns {
			if n.State == "alive" && n.Address != "" {
				alive++
			}
		}
		return alive == 2, r.stdout
	})
	_ = b

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert || ev.Type == runtime.APITypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				mu.Lock()
				problems = append(problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
				mu.Unlock()
			}
		case *runtime.EventExceptionThrown:
			mu.Lock()
			problems = append(problems, "uncaught: "+ev.ExceptionDetails.Error())
			mu.Unlock()
		}
	})
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// text polls a selector's text until want holds, failing with the last.
	waitText := func(what, sel string, want func(string) bool) {
		t.Helper()
		var got string
		deadline := time.Now().Add(45 * time.Second)
		for time.Now().Before(deadline) {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			err := chromedp.Run(sctx, chromedp.Text(sel, &got, chromedp.ByQuery, chromedp.NodeVisible))
			scancel()
			if err == nil && want(got) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: %s shows %q", what, sel, got)
	}

	// The page loads without the token, then asks for it.
	run("open the page", chromedp.Navigate(a.url()+"/"), chromedp.WaitVisible("#token", chromedp.ByID))
	run("sign in", chromedp.SendKeys("#token", secret, chromedp.ByID), chromedp.Click(`#login button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitNotVisible("#login", chromedp.ByID))
	waitText("both nodes listed", "#members tbody", func(s string) bool {
		return strings.Contains(s, "alpha (this node)") && strings.Contains(s, "beta") && strings.Contains(s, "zone=test")
	})

	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", a.url(), "--token-file", tok)
	id := strings.TrimSpace(ok(t, "spawn", "counter", "--name", "mover", "--node", a.url(), "--token-file", tok))
	ok(t, "spawn", "counter", "--name", "stays", "--on", "beta", "--node", a.url(), "--token-file", tok)
	ok(t, "send", id, "1", "2", "3", "--node", b.url(), "--token-file", tok)
	row := fmt.Sprintf(`#daemons tr[data-id=%q]`, id)
	waitText("the daemon appears on alpha", row+" td.node", func(s string) bool { return s == "alpha" })
	waitText("its count shows", row+" td.processed", func(s string) bool { return s == "3" })

	// Open its view and move it with the page's own button.
	run("open the daemon", chromedp.Click(row+" button", chromedp.ByQuery), chromedp.WaitVisible("#detail", chromedp.ByID))
	waitText("the daemon view", "#detail-h", func(s string) bool { return s == "Daemon mover" })
	waitText("beta offered as the target", "#target", func(s string) bool { return strings.Contains(s, "beta") })
	run("ask to migrate", chromedp.SetValue("#target", "beta", chromedp.ByID), chromedp.Click("#migrate", chromedp.ByID),
		chromedp.WaitVisible("#confirm-ok", chromedp.ByID))
	waitText("the confirmation names the move", "#confirm-text", func(s string) bool { return strings.Contains(s, "from alpha to beta") })
	run("confirm", chromedp.Click("#confirm-ok", chromedp.ByID))
	waitText("the migration reports its result", "#action-status", func(s string) bool { return strings.HasPrefix(s, "moved to beta") })
	waitText("the node column follows the move", row+" td.node", func(s string) bool { return s == "beta" })
	ok(t, "send", id, "4", "--node", a.url(), "--token-file", tok)
	waitText("the count follows the daemon", row+" td.processed", func(s string) bool { return s == "4" })

	if path := os.Getenv("WASMESH_SCREENSHOT"); path != "" {
		var png []byte
		run("screenshot", chromedp.Sleep(1500*time.Millisecond), chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the page logged errors:\n%s", strings.Join(problems, "\n"))
	}
}
