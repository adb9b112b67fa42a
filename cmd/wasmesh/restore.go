package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "continue a daemon from a snapshot file",
		ArgsUsage: "FILE",
		Description: `Continues a daemon from a snapshot (replacing the running one, if any).
Snapshots carry the daemon's public key, never its private key, so the daemon
continues on the node that holds its key: the one it runs on, or last ran on
(after a migration, the new node). Any node finds that node itself (it asks
its peers which one has the daemon's record); --on NODE chooses it. --kind
names the kind to restore as; it must be the module the snapshot was taken of.
A snapshot older than the running daemon (a lower input or chain sequence)
would roll it back, so it is refused (exit 2, saying how far behind) unless
--force is given.

Examples:
   wasmesh restore c1.snap
   wasmesh restore c1.snap --on node-b
   wasmesh restore c1.snap --kind counter --node http://127.0.0.1:7411
   wasmesh restore yesterday.snap --force     # roll c1 back on purpose`,
		Flags: clientFlags(
			&cli.StringFlag{Name: "kind", Usage: "kind `NAME` or digest to restore as"},
			&cli.StringFlag{Name: "on", Usage: "`NODE` (name or id) to restore on; default the node holding the daemon's key"},
			&cli.BoolFlag{Name: "force", Usage: "roll a running daemon back to an older snapshot"},
			jsonFlag(),
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "exactly one snapshot FILE"); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(c.Args().First())
			if err != nil {
				return fail(2, "read snapshot: %v", err)
			}
			d, err := cl.RestoreForce(c.Context, data, c.String("kind"), c.String("on"), c.Bool("force"))
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, d)
			}
			fmt.Fprintln(c.App.Writer, d.ID)
			return nil
		},
	}
}
