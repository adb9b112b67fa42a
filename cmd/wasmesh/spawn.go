package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node/admin"
)

func spawnCommand() *cli.Command {
	return &cli.Command{
		Name:      "spawn",
		Usage:     "start a daemon of a deployed kind; prints its id",
		ArgsUsage: "KIND|DIGEST",
		Description: `Starts a daemon with a fresh identity and prints its id (the origin hash, 16
hex digits). By default it runs on the node you talk to; --on NODE (a member
name or id from 'wasmesh nodes') places it elsewhere, and that node fetches
the module from this one if it does not have it. --require FILTER lets the
cluster choose: a node whose tags match (this one if it does, else the least
loaded; see 'wasmesh nodes' for tags). Names are unique per node and are
1-64 characters from [A-Za-z0-9._-], starting with a letter or digit (any
other name is refused, exit 2).

Examples:
   wasmesh spawn counter --name c1
   wasmesh spawn sha256:0f3a... --on node-b --config 'start=10'
   wasmesh spawn counter --require 'gpu,zone=eu-1,memory_gb>=32'
   wasmesh spawn counter --name c1 --on node-b --key c1.key

KIND is a kind name deployed on any node of the cluster (a node that lacks it
fetches the module from a peer) or a digest. --key FILE gives the daemon a key
you keep (created there, mode 0600, if FILE does not exist), so another node
can be prepared for a --no-identity migration (see wasmesh expect); the key
goes straight to the admin API of the node that runs the daemon.`,
		Flags: clientFlags(
			&cli.StringFlag{Name: "name", Usage: "daemon `NAME` (unique on its node)"},
			&cli.StringFlag{Name: "config", Usage: "`STRING` passed to the daemon's wasmesh_init"},
			&cli.StringFlag{Name: "on", Usage: "`NODE` to run on (name or id)"},
			&cli.StringFlag{Name: "require", Usage: "place on a node matching `FILTER` (tags, key=value, key>=number)"},
			&cli.StringFlag{Name: "key", Usage: "daemon key `FILE` to use (created if missing)"},
			jsonFlag(),
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "exactly one KIND or DIGEST"); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			req := admin.SpawnRequest{Kind: c.Args().First(), Name: c.String("name"), On: c.String("on"), Require: c.String("require")}
			if c.IsSet("config") {
				req.Config = []byte(c.String("config"))
			}
			if f := c.String("key"); f != "" {
				if req.Require != "" {
					return fail(2, "--key and --require are exclusive: choose the node with --on")
				}
				if req.Key, err = keyFile(f, true); err != nil {
					return err
				}
				if req.On != "" {
					if cl, err = aimAt(c.Context, cl, req.On); err != nil {
						return err
					}
					req.On = ""
				}
			}
			info, err := cl.Spawn(c.Context, req)
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, info)
			}
			fmt.Fprintln(c.App.Writer, info.ID)
			return nil
		},
	}
}
