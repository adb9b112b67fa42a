package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list the daemons of the whole cluster",
		Description: `Lists every daemon on every node: id, name, kind, digest, node, status,
events processed and memory. STATUS is running or failed for daemons their
node listed just now. A node that does not answer is never left out: its
daemons are listed from the last listing this node got from it, with STATUS
unreachable (the node is dead, suspect or cut off; its daemons may have
changed) or offline (it left the cluster cleanly: they are checkpointed on its
disk and come back when it restarts); a row with no id stands for a node whose
daemons are not known. Each such node is named in a warning on stderr.
Under the table, each failed daemon is named with its reason, one line each
(a daemon that could not be recovered at startup stays listed failed until
'wasmesh stop' removes it).

Exit status: 0 when the listing is complete (offline daemons included: their
state is known); 1 when a node did not answer, so the listing is partial,
after printing it all. --json has the same rows, each with a "status" field.

Examples:
   wasmesh ps
   wasmesh ps --json | jq '.[] | select(.node == "node-b") | .id'
   wasmesh ps --json | jq '.[] | select(.status == "unreachable")'`,
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
			partial := psWarnings(c.App.ErrWriter, res)
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, res.Daemons); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tKIND\tDIGEST\tNODE\tSTATUS\tEVENTS\tMEMORY")
				for _, d := range res.Daemons {
					events, memory := strconv.FormatUint(d.EventsProcessed, 10), humanBytes(d.MemoryBytes)
					if d.ID == "" {
						events, memory = "-", "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(d.ID), dash(d.Name), dash(d.Kind), dash(shortDigest(d.Digest)), dash(d.Node), dash(d.Status), events, memory)
				}
				if err := tw.Flush(); err != nil {
					return fail(1, "%v", err)
				}
				psReasons(c.App.Writer, res.Daemons)
			}
			if partial {
				// Already said on stderr, node by node.
				return &exitError{code: 1, err: fmt.Errorf("")}
			}
			return nil
		},
	}
}

// psWarnings names on w every node that did not answer and what is shown
// of its daemons; it reports whether the listing is partial.
func psWarnings(w io.Writer, res admin.PsResponse) (partial bool) {
	for _, name := range res.Unreachable {
		known, status := 0, node.StatusUnreachable
		for _, d := range res.Daemons {
			if d.Node != name || (d.Status != node.StatusUnreachable && d.Status != node.StatusOffline) {
				continue
			}
			status = d.Status
			if d.ID != "" {
				known++
			}
		}
		switch {
		case status == node.StatusOffline:
			fmt.Fprintf(w, "warning: node %s left the cluster; its %d known daemon(s) are listed as offline (checkpointed on its disk)\n", name, known)
		case known > 0:
			partial = true
			fmt.Fprintf(w, "warning: node %s did not answer; its %d daemon(s) from its last listing are shown as unreachable and may have changed\n", name, known)
		default:
			partial = true
			fmt.Fprintf(w, "warning: node %s did not answer, and nothing is known about its daemons\n", name)
		}
	}
	return partial
}

// psReasons says under the table why each failed daemon failed, one line
// each (the table has no room for it).
func psReasons(w io.Writer, rows []node.DaemonInfo) {
	first := true
	for _, d := range rows {
		if d.Status != node.StatusFailed || d.LastError == "" {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		who := dash(d.ID)
		if d.Name != "" {
			who = dash(d.Name) + " (" + who + ")"
		}
		fmt.Fprintf(w, "failed: %s on %s: %s\n", who, dash(d.Node), dash(psClip(strings.Join(strings.Fields(d.LastError), " "), 400)))
	}
}

// psClip cuts s to at most max bytes, at a rune start.
func psClip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max] + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return termSafe(s, false)
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
