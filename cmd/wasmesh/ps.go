package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list the daemons of the whole cluster",
		Description: `Lists every daemon on every alive node: id, name, kind, digest, node, events
processed and memory. Nodes that did not answer are named on stderr.

Examples:
   wasmesh ps
   wasmesh ps --json | jq '.[] | select(.node == "node-b") | .id'`,
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0, "no arguments"); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			res, err := cl.Ps(c.Context)
			if err != nil {
				return apiFail(err)
			}
			for _, u := range res.Unreachable {
				fmt.Fprintf(c.App.ErrWriter, "warning: node %s did not answer; its daemons are not listed\n", u)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res.Daemons)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tKIND\tDIGEST\tNODE\tEVENTS\tMEMORY")
			for _, d := range res.Daemons {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, dash(d.Name), dash(d.Kind), shortDigest(d.Digest), d.Node, d.EventsProcessed, humanBytes(d.MemoryBytes))
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
