package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:      "stop",
		Usage:     "stop a daemon, wherever it runs",
		ArgsUsage: "DAEMON",
		Description: `Checkpoints and stops a daemon. Its node keeps the record and the last
checkpoint, so 'wasmesh restore' on that node can bring it back.
A daemon that 'wasmesh ps' lists failed because its node could not
recover it at startup is removed for good instead: its record, checkpoints
and journaled events are released and its name is free again.

Examples:
   wasmesh stop c1`,
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			cl, daemon, err := daemonClient(c)
			if err != nil {
				return err
			}
			d, err := cl.Stop(c.Context, daemon)
			if err != nil {
				return apiFail(err)
			}
			fmt.Fprintf(c.App.Writer, "stopped %s on %s\n", d.ID, termSafe(d.Node, false))
			return nil
		},
	}
}
