package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// goneAfter is how many polls in a row may find no daemon before logs -f
// gives up: a migration's cutover can hide it for a moment, a stop does
// for good.
const goneAfter = 10

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a daemon's log lines (-f: keep following them, across migrations)",
		ArgsUsage: "DAEMON",
		Description: `Prints the lines the guest logged (the last 1000), oldest first, wherever
the daemon runs. The last 100 (at most 64 KiB) move with the daemon in a
migration and survive a restart of its node.

-f keeps polling (every --interval) and prints each new line once. The
daemon is asked for by name or id through --node, which finds it wherever it
runs, so the output goes on across migrations: the lines that moved with it
are not printed again. -f ends on Ctrl-C, or with exit 1 when the daemon has
been gone for` + fmt.Sprintf(" %d polls in a row (stopped).", goneAfter) + `
With --json, -f prints one JSON object per line.

Examples:
   wasmesh logs c1
   wasmesh logs c1 --json
   wasmesh logs -f c1
   wasmesh logs -f c1 --interval 200ms`,
		Flags: clientFlags(jsonFlag(),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines as the daemon logs them"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "with -f, poll every `DURATION`"},
		),
		Action: func(c *cli.Context) error {
			cl, daemon, err := daemonClient(c)
			if err != nil {
				return err
			}
			if !c.Bool("follow") {
				lines, err := cl.Logs(c.Context, daemon)
				if err != nil {
					return apiFail(err)
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, lines)
				}
				for _, l := range lines {
					printLogLine(c.App.Writer, l)
				}
				return nil
			}
			if c.Duration("interval") <= 0 {
				return fail(2, "--interval must be positive, got %s", c.Duration("interval"))
			}
			return followLogs(c.Context, cl, daemon, c.Duration("interval"), c.App.Writer, c.Bool("json"))
		},
	}
}

func printLogLine(w io.Writer, l admin.LogLine) {
	fmt.Fprintf(w, "%s [%s] %s\n", l.Time.Local().Format(time.RFC3339Nano), termSafe(l.Level, false), termSafe(l.Text, false))
}

// logKey identifies a line across polls and nodes: a line that moved with
// the daemon keeps its time (to the nanosecond) and text.
type logKey struct {
	nanos int64
	level string
	text  string
}

// followLogs polls the logs route and prints the lines the previous answer
// did not have. Remembering only the previous answer bounds memory by the
// route's own window (1000 lines) and is enough: new lines come at the end,
// and the lines that move with a migrating daemon are its newest, which the
// previous answer held.
func followLogs(ctx context.Context, cl *admin.Client, daemon string, every time.Duration, w io.Writer, asJSON bool) error {
	var prev map[logKey]bool
	missing := 0
	enc := json.NewEncoder(w)
	for {
		lines, err := cl.Logs(ctx, daemon)
		switch {
		case err == nil:
			missing = 0
			seen := make(map[logKey]bool, len(lines))
			for _, l := range lines {
				k := logKey{l.Time.UnixNano(), l.Level, l.Text}
				seen[k] = true
				if prev[k] {
					continue
				}
				if asJSON {
					if err := enc.Encode(l); err != nil {
						return fail(1, "%v", err)
					}
				} else {
					printLogLine(w, l)
				}
			}
			prev = seen
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, node.ErrDaemonNotFound):
			if missing++; missing >= goneAfter || prev == nil {
				return apiFail(err)
			}
		case errors.Is(err, node.ErrUnavailable), errors.Is(err, node.ErrShuttingDown), errors.Is(err, node.ErrMigration):
			// The node asked, or the one hosting the daemon, is between
			// states (a migration's cutover, a restart): ask again.
		default:
			var ae *admin.APIError
			if prev == nil || errors.As(err, &ae) {
				return apiFail(err)
			}
			// The node we ask is unreachable after having answered:
			// it may be restarting; keep trying until Ctrl-C.
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
