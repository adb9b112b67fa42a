package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// drainSubcommands hang under "wasmesh node".
func drainSubcommands() []*cli.Command {
	return []*cli.Command{drainCommand(), undrainCommand()}
}

func drainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "move every daemon off a node, live, and keep new ones off it",
		ArgsUsage: "NODE",
		Description: `Marks NODE draining (it refuses spawns and inbound migrations, and no
scheduler picks it; the mark survives a restart of the node and shows in
'wasmesh nodes'), then live-migrates every daemon it hosts to the other
nodes: the least-loaded target first, --parallel at a time, each failed move
retried up to 3 times (on another node when there is one). Senders keep
sending by name throughout; no event is lost or applied twice.

Progress shows daemons moved / remaining / failed and bytes sent: a bar on a
terminal, one line per daemon otherwise, JSON lines with --json (each
{"progress":...}, then {"result":...}). The command ends with a summary and
exits 1 if any daemon did not move (they are listed). The node stays
draining until 'wasmesh node undrain NODE'.

The drain runs on NODE itself: --node may point at any member, which asks
NODE over the mesh and relays its progress (NODE's admin API need not be
reachable from here).

Examples:
   wasmesh node drain n1
   wasmesh node drain n1 --to n2 --to n3 --parallel 8
   wasmesh node drain n1 --require zone=eu-1 --json
   wasmesh node undrain n1`,
		Flags: clientFlags(
			&cli.StringSliceFlag{Name: "to", Usage: "move daemons only to `NODE` (repeatable)"},
			&cli.StringFlag{Name: "require", Usage: "move daemons only to nodes matching `FILTER` (e.g. 'zone=eu-1')"},
			&cli.IntFlag{Name: "parallel", Value: node.DefaultDrainParallel, Usage: fmt.Sprintf("migrations at once, 1 to %d", node.MaxDrainParallel)},
			jsonFlag(),
		),
		OnUsageError: usageError,
		Action:       drainAction,
	}
}

func undrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "undrain",
		Usage:     "let spawns and migrations back onto a drained node",
		ArgsUsage: "NODE",
		Description: `Clears NODE's draining mark (see 'wasmesh node drain'): it takes spawns and
inbound migrations again and schedulers may pick it. Daemons that moved away
stay where they are.

Examples:
   wasmesh node undrain n1`,
		Flags:        clientFlags(),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fail(2, "node undrain needs exactly one NODE (see wasmesh node undrain --help)")
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ref := c.Args().First()
			// Any node relays it to NODE.
			if err := cl.Undrain(c.Context, ref); err != nil {
				return apiFail(err)
			}
			fmt.Fprintf(c.App.Writer, "node %s undrained: it takes spawns and migrations again\n", termSafe(ref, false))
			return nil
		},
	}
}

func drainAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fail(2, "node drain needs exactly one NODE (see wasmesh node drain --help)")
	}
	if c.IsSet("to") && c.IsSet("require") {
		return fail(2, "give at most one of --to NODE and --require FILTER")
	}
	if p := c.Int("parallel"); p < 1 || p > node.MaxDrainParallel {
		return fail(2, "--parallel %d: want 1 to %d", p, node.MaxDrainParallel)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	ref := c.Args().First()
	asJSON := c.Bool("json")
	var show func(admin.DrainProgress)
	var done func()
	if asJSON {
		enc := json.NewEncoder(c.App.Writer)
		show = func(p admin.DrainProgress) { _ = enc.Encode(admin.DrainLine{Progress: &p}) }
	} else {
		show, done = drainProgress(c.App.ErrWriter)
	}
	// The node asked relays NODE's drain and its progress.
	res, err := cl.Drain(c.Context, ref, admin.DrainBody{To: c.StringSlice("to"), Require: requireOrAny(c), Parallel: c.Int("parallel")}, show)
	if done != nil {
		done()
	}
	if err != nil && res.Total == 0 {
		return apiFail(err)
	}
	if asJSON {
		if perr := json.NewEncoder(c.App.Writer).Encode(admin.DrainLine{Result: &res}); perr != nil {
			return fail(1, "%v", perr)
		}
	} else {
		printDrainSummary(c.App.Writer, res)
	}
	if err != nil {
		return apiFail(err)
	}
	return nil
}

func printDrainSummary(out io.Writer, res admin.DrainResult) {
	fmt.Fprintf(out, "drained %s: %d of %d daemons moved, %d failed, %s sent, %.1f s\n",
		termSafe(res.Node, false), res.Moved, res.Total, res.Failed, humanBytes(uint64(res.Bytes)), res.Millis/1000)
	per := map[string]int{}
	for _, d := range res.Daemons {
		if d.Error == "" {
			per[d.To]++
		}
	}
	for to, k := range per {
		fmt.Fprintf(out, "  to %-12s %d\n", termSafe(to, false), k)
	}
	for _, d := range res.Daemons {
		if d.Error != "" {
			fmt.Fprintf(out, "  not moved %s %s (%d attempts): %s\n", d.Daemon, termSafe(d.Name, false), d.Attempts, termSafe(d.Error, false))
		}
	}
}

// drainProgress shows moved/remaining/failed: a bar on a terminal, a line
// per daemon otherwise.
func drainProgress(w io.Writer) (func(admin.DrainProgress), func()) {
	if isTerminal(w) {
		var bar *progressbar.ProgressBar
		return func(p admin.DrainProgress) {
				if bar == nil || (p.Event == "start" && bar.GetMax() != p.Total) {
					if bar == nil {
						bar = progressbar.NewOptions(p.Total, progressbar.OptionSetWriter(w), progressbar.OptionClearOnFinish(), progressbar.OptionShowCount())
					} else {
						bar.ChangeMax(p.Total)
					}
				}
				bar.Describe(fmt.Sprintf("moved %d, failed %d, %s", p.Moved, p.Failed, humanBytes(uint64(p.Bytes))))
				_ = bar.Set(p.Moved + p.Failed)
			}, func() {
				if bar != nil {
					_ = bar.Finish()
				}
			}
	}
	return func(p admin.DrainProgress) {
		switch p.Event {
		case "start":
			fmt.Fprintf(w, "draining: %d daemons to move\n", p.Total)
		case "moved":
			fmt.Fprintf(w, "moved  %s %s -> %s  (%d moved, %d remaining, %d failed, %s)\n", p.Daemon, termSafe(p.Name, false), termSafe(p.To, false), p.Moved, p.Remaining, p.Failed, humanBytes(uint64(p.Bytes)))
		case "retry":
			fmt.Fprintf(w, "retry  %s %s: %s\n", p.Daemon, termSafe(p.Name, false), termSafe(p.Error, false))
		case "failed":
			fmt.Fprintf(w, "FAILED %s %s: %s  (%d moved, %d remaining, %d failed)\n", p.Daemon, termSafe(p.Name, false), termSafe(p.Error, false), p.Moved, p.Remaining, p.Failed)
		}
	}, nil
}
