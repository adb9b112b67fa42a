package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
	"github.com/wasmesh/wasmesh/plugins/examples"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "start a 3-node cluster in this process and watch a daemon work",
		Description: `Starts three nodes on free loopback ports (INSECURE --dev credentials, temporary
data dirs), deploys the counter example on the first, spawns it on the second
(which fetches the module from the first), and streams events to it through
all three nodes while printing a live view. Halfway through it live-migrates
the daemon to another node while the events keep flowing, and prints the
migration's total time and pause. At the end it asks the counter
for its count and checks that no event was lost or repeated. While it runs,
the printed admin URLs work with every other verb (wasmesh ps --node URL).

Examples:
   wasmesh demo
   wasmesh demo --duration 20s --events 500`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Value: 5 * time.Second, Usage: "how long to stream events"},
			&cli.IntFlag{Name: "events", Usage: "stop after `N` events (0: as many as fit in --duration)"},
			&cli.IntFlag{Name: "rate", Value: 200, Usage: "events per second"},
			&cli.BoolFlag{Name: "verbose", Usage: "show the nodes' logs"},
		},
		Action: demoAction,
	}
}

type demoNode struct {
	n   *node.Node
	srv *admin.Server
	dir string
}

func demoAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fail(2, "demo takes no arguments")
	}
	if c.Duration("duration") <= 0 || c.Int("rate") <= 0 || c.Int("events") < 0 {
		return fail(2, "--duration and --rate must be positive, --events not negative")
	}
	out := c.App.Writer
	logger := slog.New(slog.DiscardHandler)
	if c.Bool("verbose") {
		logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()

	fmt.Fprintln(out, "starting 3 nodes on loopback (INSECURE --dev cluster credentials, temporary data dirs)")
	var nodes []*demoNode
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].srv.Shutdown(sctx)
			nodes[i].n.Close(sctx)
			os.RemoveAll(nodes[i].dir)
		}
	}()
	for i, name := range []string{"demo-a", "demo-b", "demo-c"} {
		var join []string
		if i > 0 {
			join = []string{nodes[0].n.GossipAddr()}
		}
		dn, err := startDemoNode(ctx, name, join, logger)
		if err != nil {
			return fail(1, "start %s: %v", name, err)
		}
		nodes = append(nodes, dn)
		fmt.Fprintf(out, "  %s  id %s  quic %s  admin %s\n", name, dn.n.ID().String()[:12], dn.n.QUICAddr(), dn.srv.URL())
	}
	if err := waitMembers(ctx, nodes, 10*time.Second); err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintln(out, "cluster formed: every node sees 3 alive members")

	a, b := nodes[0].n, nodes[1].n
	k, err := a.Deploy(ctx, examples.CounterWAT(), "counter")
	if err != nil {
		return fail(1, "deploy: %v", err)
	}
	fmt.Fprintf(out, "deployed counter-wat on %s: %s\n", a.Name(), k.Digest)
	d, err := a.Spawn(ctx, node.SpawnRequest{Kind: "counter", Name: "counter", On: b.Name()})
	if err != nil {
		return fail(1, "spawn: %v", err)
	}
	fmt.Fprintf(out, "spawned daemon %s (\"counter\") on %s; it fetched the module from %s\n\n", d.ID, d.Node, a.Name())

	sent, _, err := demoStream(ctx, c, nodes, d.ID)
	if err != nil {
		return err
	}
	res, err := nodes[2].n.Send(ctx, d.ID, []byte("get"))
	if err != nil || len(res.Outputs) != 1 {
		return fail(1, "final get: %v", err)
	}
	count := string(res.Outputs[0])
	fmt.Fprintf(out, "\nsent %s through 3 nodes; the counter (on %s) says %s\n", nEvents(sent), res.Node, count)
	if count != fmt.Sprint(sent) {
		return fail(1, "the count %s does not match the %d events sent", count, sent)
	}
	fmt.Fprintln(out, "no event lost or repeated. Next: go build -o wasmesh ./cmd/wasmesh && ./wasmesh node --help")
	return nil
}

func startDemoNode(ctx context.Context, name string, join []string, logger *slog.Logger) (*demoNode, error) {
	dir, err := os.MkdirTemp("", "wasmesh-demo-"+name+"-")
	if err != nil {
		return nil, err
	}
	srv, err := admin.Listen("127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n, err := node.New(ctx, node.Config{
		DataDir: dir, Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join,
		Dev: true, Logger: logger, Version: readVersion().nodeVersion(), // the node adds "node"
	})
	if err != nil {
		srv.Shutdown(context.Background())
		os.RemoveAll(dir)
		return nil, err
	}
	srv.Serve(admin.Handler(n, admin.Options{Metrics: n.Metrics().Registry, Logger: logger}), logger)
	return &demoNode{n: n, srv: srv, dir: dir}, nil
}

func waitMembers(ctx context.Context, nodes []*demoNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, dn := range nodes {
			alive := 0
			for _, m := range dn.n.Nodes() {
				if m.State == "alive" && m.Address != "" {
					alive++
				}
			}
			ok = ok && alive == len(nodes)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the nodes did not see each other within " + timeout.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demoStream sends events round-robin through every node and redraws a
// live view; it returns how many events were sent and the last output.
func demoStream(ctx context.Context, c *cli.Context, nodes []*demoNode, daemon string) (int, string, error) {
	out := c.App.Writer
	live := false
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		live = true
	}
	dur, limit := c.Duration("duration"), c.Int("events")
	tick := time.NewTicker(time.Second / time.Duration(c.Int("rate")))
	defer tick.Stop()
	start := time.Now()
	lastDraw := time.Time{}
	migrated := false
	var migDone <-chan string
	sent, last := 0, ""
	for time.Since(start) < dur && (limit == 0 || sent < limit) {
		select {
		case <-ctx.Done():
			return sent, last, fail(1, "interrupted")
		case <-tick.C:
		}
		via := nodes[sent%len(nodes)].n
		res, err := via.Send(ctx, daemon, []byte("tick"))
		if err != nil {
			return sent, last, fail(1, "event %d via %s: %v", sent+1, via.Name(), err)
		}
		sent++
		if len(res.Outputs) > 0 {
			last = string(res.Outputs[0])
		}
		if !migrated && time.Since(start) > dur/2 {
			migrated = true
			// The live migration runs beside the stream: events keep
			// flowing through every node while the daemon moves.
			migDone = demoMigrate(ctx, nodes, daemon)
		}
		select {
		case msg := <-migDone:
			if live {
				fmt.Fprintln(out)
			}
			fmt.Fprintln(out, msg)
			migDone = nil
		default:
		}
		if time.Since(lastDraw) >= 250*time.Millisecond {
			lastDraw = time.Now()
			drawDemo(out, live, time.Since(start), sent, last, nodes, daemon)
		}
	}
	drawDemo(out, live, time.Since(start), sent, last, nodes, daemon)
	if live {
		fmt.Fprintln(out)
	}
	return sent, last, nil
}

// demoMigrate moves daemon to the next node in the background and reports
// one line when done.
func demoMigrate(ctx context.Context, nodes []*demoNode, daemon string) <-chan string {
	done := make(chan string, 1)
	var from, to *demoNode
	for i, dn := range nodes {
		for _, d := range dn.n.LocalDaemons() {
			if d.ID == daemon {
				from, to = dn, nodes[(i+1)%len(nodes)]
			}
		}
	}
	if from == nil {
		done <- "(live migration skipped: the daemon was not found)"
		return done
	}
	go func() {
		res, err := from.n.Migrate(ctx, node.MigrateRequest{Ref: daemon, To: to.n.Name(), Timeout: 30 * time.Second}, nil)
		if err != nil {
			done <- fmt.Sprintf(">>> live migration %s -> %s failed: %v (the daemon stays on %s)", from.n.Name(), to.n.Name(), err, from.n.Name())
			return
		}
		// Two short lines rather than one that wraps at 80 columns.
		done <- fmt.Sprintf(">>> live-migrated the counter from %s to %s in %.1f ms (paused %.1f ms)\n"+
			"    %s snapshot; %s buffered and replayed, %d forwarded",
			res.From, res.To, res.TotalMillis, res.PauseMillis, humanBytes(uint64(res.SnapshotBytes)),
			nEvents(res.EventsBuffered), res.EventsForwarded)
	}()
	return done
}

// demoWidth bounds the live line: it is redrawn with \r, which garbles
// any line longer than the terminal (80 columns is the smallest common).
const demoWidth = 79

// drawDemo prints the live view: time, events sent (through every node in
// turn), the counter's last answer and the node hosting the daemon now.
func drawDemo(w io.Writer, live bool, el time.Duration, sent int, last string, nodes []*demoNode, daemon string) {
	host := "?"
	for _, dn := range nodes {
		for _, d := range dn.n.LocalDaemons() {
			if d.ID == daemon {
				host = dn.n.Name()
			}
		}
	}
	line := fmt.Sprintf("[%5.1fs] %s sent via %d nodes, counter at %s, daemon on %s",
		el.Seconds(), nEvents(sent), len(nodes), last, host)
	if len(line) > demoWidth {
		line = line[:demoWidth]
	}
	if live {
		fmt.Fprintf(w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(w, line)
}

// nEvents is "1 event", "2 events".
func nEvents(n int) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}
