package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show one daemon's counters",
		ArgsUsage: "DAEMON",
		Description: `Shows a daemon's node, kind, events processed and emitted, errors, memory,
CPU time, chain position and last checkpoint. DAEMON is an id or a name.

Examples:
   wasmesh stats c1
   wasmesh stats 3f2a9c0d11e2b7a4 --json`,
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			cl, daemon, err := daemonClient(c)
			if err != nil {
				return err
			}
			d, err := cl.Stats(c.Context, daemon)
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, d)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%s\n", k, termSafe(fmt.Sprint(v), false)) }
			row("id", d.ID)
			row("name", dash(d.Name))
			row("node", d.Node)
			row("kind", dash(d.Kind))
			row("digest", d.Digest)
			row("mode", d.Mode)
			row("events processed", d.EventsProcessed)
			row("events emitted", d.EventsEmitted)
			row("errors", d.Errors)
			row("memory", humanBytes(d.MemoryBytes))
			row("cpu time", time.Duration(d.CPUNanos))
			row("input seq", d.InputSeq)
			row("chain seq", d.ChainSequence)
			row("last checkpoint", d.LastCheckpoint)
			if d.Failed {
				row("state", "FAILED (restore from a snapshot)")
			}
			if d.LastError != "" {
				row("last error", d.LastError)
			}
			return tw.Flush()
		},
	}
}
