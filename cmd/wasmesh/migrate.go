package main

import (
	"fmt"
	"io"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "move a running daemon to another node with no event lost or applied twice",
		ArgsUsage: "DAEMON",
		Description: `Live-migrates a daemon: its node freezes it, snapshots it, ships the
module digest and the snapshot to the target over QUIC, buffers events that
arrive meanwhile, replays them on the target, flips the route and hands the
daemon's key over sealed to the target node. Senders keep sending throughout;
their events are applied exactly once, on one side or the other.

If anything fails before the handover, the daemon stays where it was and the
command exits 1 with the reason.

Examples:
   wasmesh migrate c1 --to node-b
   wasmesh migrate 3f9c0e2a7d1b4c55 --to node-c --timeout 30s --json
   wasmesh migrate c1 --to node-b --no-identity   # the target must hold the key already
   wasmesh migrate c1 --to node-b --no-identity --key c1.key   # give it the key first (see expect)
   wasmesh migrate c1 --require zone=eu-1         # the scheduler picks a matching node`,
		Flags: clientFlags(
			&cli.StringFlag{Name: "to", Usage: "target `NODE` (name or id, see 'wasmesh nodes')"},
			&cli.StringFlag{Name: "require", Usage: "let the scheduler pick a target matching `FILTER` (e.g. 'zone=eu-1'; '' is any)"},
			&cli.BoolFlag{Name: "no-identity", Usage: "do not ship the daemon key; the target must have it registered (see wasmesh expect)"},
			&cli.StringFlag{Name: "key", Usage: "first register the daemon key `FILE` (from spawn --key) on the --to node, as 'wasmesh expect' does"},
			&cli.DurationFlag{Name: "timeout", Value: 0, DefaultText: "2m", Usage: "abort if not done within `DURATION`"},
			jsonFlag(),
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "exactly one DAEMON"); err != nil {
				return err
			}
			if c.IsSet("to") == c.IsSet("require") {
				return fail(2, "give exactly one of --to NODE and --require FILTER")
			}
			if c.Duration("timeout") < 0 {
				return fail(2, "--timeout must not be negative")
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			if key := c.String("key"); key != "" {
				if !c.IsSet("to") {
					return fail(2, "--key needs --to NODE (the node to give the key to)")
				}
				if _, err := expectOn(c, cl, c.Args().First(), c.String("to"), key); err != nil {
					return err
				}
			}
			w := c.App.ErrWriter
			asJSON := c.Bool("json")
			var show func(admin.MigrateProgress)
			var done func()
			if !asJSON {
				show, done = migrateProgress(w)
			}
			res, err := cl.Migrate(c.Context, c.Args().First(), admin.MigrateBody{
				To: c.String("to"), Require: requireOrAny(c), NoIdentity: c.Bool("no-identity"), TimeoutMs: c.Duration("timeout").Milliseconds(),
			}, show)
			if done != nil {
				done()
			}
			if err != nil {
				return apiFail(noIdentityHint(c, err))
			}
			if asJSON {
				return printJSON(c.App.Writer, res)
			}
			out := c.App.Writer
			fmt.Fprintf(out, "migrated %s from %s to %s\n", termSafe(res.Daemon, false), termSafe(res.From, false), termSafe(res.To, false))
			fmt.Fprintf(out, "  total      %.1f ms\n", res.TotalMillis)
			fmt.Fprintf(out, "  pause      %.1f ms (daemon not processing events)\n", res.PauseMillis)
			// Sizes of two kinds, never added together: what the daemon's
			// state is (encoded snapshot) and what moving it cost (wire
			// bytes, after compression).
			if res.PreCopied {
				conv := "converged"
				if !res.Converged {
					conv = "did not converge: the daemon dirties memory about as fast as it travels"
				}
				fmt.Fprintf(out, "  pre-copy   %s on the wire while running: base + %d round(s), %s\n", humanBytes(uint64(res.PreCopyBytes)), res.PreCopyRounds, conv)
				fmt.Fprintf(out, "  snapshot   %s at the freeze (pages changed since the base), %s on the wire\n", humanBytes(uint64(res.SnapshotBytes)), humanBytes(uint64(res.WireBytes)))
				fmt.Fprintf(out, "  wire       %s in all\n", humanBytes(uint64(res.PreCopyBytes+res.WireBytes)))
			} else {
				fmt.Fprintf(out, "  snapshot   %s, %s on the wire\n", humanBytes(uint64(res.SnapshotBytes)), humanBytes(uint64(res.WireBytes)))
			}
			fmt.Fprintf(out, "  events     %d buffered and replayed, %d forwarded after cutover\n", res.EventsBuffered, res.EventsForwarded)
			if res.Attempts > 1 {
				fmt.Fprintf(out, "  attempts   %d (target was not ready at first)\n", res.Attempts)
			}
			// Channel subscriptions follow the daemon; one that did not
			// is said here (the target re-asserts it, so it is not fatal).
			moved := 0
			for _, s := range res.Subscriptions {
				if s.Error == "" {
					moved++
					continue
				}
				fmt.Fprintf(out, "  channel    %s: not moved yet (%s); the target re-subscribes\n", s.Channel, s.Error)
			}
			if moved > 0 {
				fmt.Fprintf(out, "  channels   %d subscription(s) moved with it\n", moved)
			}
			return nil
		},
	}
}

// migrateProgress shows phases and bytes: a bar on a terminal, one line
// per phase change otherwise (never a line per percent: piped output is
// read later, in a log).
func migrateProgress(w io.Writer) (func(admin.MigrateProgress), func()) {
	if isTerminal(w) {
		var bar *progressbar.ProgressBar
		return func(p admin.MigrateProgress) {
				switch {
				case p.Phase == node.PhasePreCopy && bar == nil:
					bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(w), progressbar.OptionClearOnFinish(),
						progressbar.OptionSetDescription(preCopyLine(p)))
					return
				case p.BytesTotal <= 0:
					if bar != nil {
						bar.Describe(p.Phase)
					}
					return
				case bar == nil:
					bar = progressbar.NewOptions(p.BytesTotal, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
				case bar.GetMax() != p.BytesTotal:
					// The pre-copy's spinner, or a new attempt's snapshot.
					bar.ChangeMax(p.BytesTotal)
				}
				bar.Describe(p.Phase)
				_ = bar.Set(p.BytesSent)
			}, func() {
				if bar != nil {
					_ = bar.Finish()
				}
			}
	}
	last := ""
	return func(p admin.MigrateProgress) {
		if p.Phase == last {
			return
		}
		last = p.Phase
		switch {
		case p.Phase == node.PhasePreCopy:
			fmt.Fprintf(w, "phase %-9s %s\n", p.Phase, preCopyLine(p))
		case p.BytesTotal > 0:
			fmt.Fprintf(w, "phase %-9s attempt %d, %s of %s sent\n", p.Phase, p.Attempt, humanBytes(uint64(p.BytesSent)), humanBytes(uint64(p.BytesTotal)))
		default:
			fmt.Fprintf(w, "phase %-9s attempt %d\n", p.Phase, p.Attempt)
		}
	}, nil
}

func preCopyLine(p admin.MigrateProgress) string {
	return fmt.Sprintf("sending %s of memory ahead while the daemon runs", humanBytes(uint64(p.MemoryBytes)))
}

// requireOrAny turns an explicitly empty --require into a filter that any
// node satisfies (a "*" the API reads as "no constraint").
func requireOrAny(c *cli.Context) string {
	if c.IsSet("require") && c.String("require") == "" {
		return "*"
	}
	return c.String("require")
}
