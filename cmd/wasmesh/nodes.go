package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func nodesCommand() *cli.Command {
	return &cli.Command{
		Name:  "nodes",
		Usage: "list cluster members",
		Description: `Lists the members the node knows: id, name, QUIC address, admin API URL
(what --node takes to talk to that node), state (alive, leaving, dead, left,
draining (see wasmesh node drain: it takes no new daemons), or unverified: it knows the gossip secret but did not prove a certificate of
the cluster CA, so it is never given work),
tags and load (daemons hosted). "*" marks the node you asked.

Examples:
   wasmesh nodes
   wasmesh nodes --json`,
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0, "no arguments"); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ns, err := cl.Nodes(c.Context)
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, ns)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tADDRESS\tADMIN\tSTATE\tLOAD\tTAGS")
			for _, n := range ns {
				name := n.Name
				if n.Local {
					name += " *"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", dash(n.ID), dash(name), dash(n.Address), dash(n.Admin), dash(n.State), n.Load, dash(strings.Join(n.Tags, ",")))
			}
			return tw.Flush()
		},
	}
}
