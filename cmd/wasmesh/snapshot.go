package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshot",
		Usage:     "save a daemon's signed snapshot to a file",
		ArgsUsage: "DAEMON",
		Description: `Captures the daemon's whole state now (memory and globals, or what a
cooperative guest writes) signed by the daemon's key, and writes it to -o FILE
(mode 0600). 'wasmesh run --restore' and 'wasmesh restore' read it.

Examples:
   wasmesh snapshot c1 -o c1.snap`,
		Flags: clientFlags(&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "`FILE` to write", Required: true}),
		Action: func(c *cli.Context) error {
			cl, daemon, err := daemonClient(c)
			if err != nil {
				return err
			}
			data, err := cl.Snapshot(c.Context, daemon)
			if err != nil {
				return apiFail(err)
			}
			if err := snapshot.WriteFile(c.String("output"), data); err != nil {
				return fail(1, "write %s: %v", c.String("output"), err)
			}
			fmt.Fprintf(c.App.ErrWriter, "wrote %s (%d bytes)\n", c.String("output"), len(data))
			return nil
		},
	}
}
