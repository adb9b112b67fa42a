package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
)

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a daemon's log lines",
		ArgsUsage: "DAEMON",
		Description: `Prints the lines the guest logged (the last 1000), oldest first, wherever
the daemon runs. The last 100 (at most 64 KiB) move with the daemon in a
migration and survive a restart of its node.

Examples:
   wasmesh logs c1
   wasmesh logs c1 --json`,
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			cl, daemon, err := daemonClient(c)
			if err != nil {
				return err
			}
			lines, err := cl.Logs(c.Context, daemon)
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, lines)
			}
			for _, l := range lines {
				fmt.Fprintf(c.App.Writer, "%s [%s] %s\n", l.Time.Local().Format(time.RFC3339Nano), termSafe(l.Level, false), termSafe(l.Text, false))
			}
			return nil
		},
	}
}
