package main

import (
	"bufio"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/payload"
)

func sendCommand() *cli.Command {
	return &cli.Command{
		Name:      "send",
		Usage:     "send events to a daemon, wherever it runs; prints its outputs",
		ArgsUsage: "DAEMON [PAYLOAD]...",
		Description: `Each PAYLOAD argument (or, with --stdin, each line of standard input) is one
event. Every output is printed on its own line, in order. DAEMON is an id or a
name; any node finds it, wherever in the cluster it runs. A failing event
prints "error: event N: ..." and sending goes on; the exit status is then 1.
In text format, outputs are the daemon's bytes when stdout is a pipe or a
file; on a terminal their control characters are escaped (\x1b, \u202e)
so a daemon cannot drive it (use hex or base64 for binary outputs).

While a daemon migrates, its name (and id) keep working through any node. If
the node answers that the daemon is not found after this command already
reached it, the event was not delivered, so it is sent again, for up to
--retry-for; an error that does not say "not delivered" is never retried
(the event may have been applied): it is reported for that event and the
next one goes on.

With --client-id, every event is exactly-once: events are numbered from
--first-event-id under that client id, and an event whose answer is lost
(the node crashed, restarted, or the connection broke) is resent for up to
--retry-for; the daemon applies each (client id, event id) once, wherever
it runs, across migrations and crashes. A resend of an event that had been
applied prints "event N: already applied" on stderr instead of outputs.
To continue after this command itself died, run it again with the same
--client-id and the events from the first unacknowledged one (with
--first-event-id set to its number), or from the start: what was applied is
answered as already applied.

With --stdin, all lines go over one streaming request, answered event by
event in order while later lines are still being sent, so a long input runs
at the speed of the daemon rather than of one request per event; the name is
resolved once for the stream, and a stream that breaks is reopened and goes
on with the rest (events it got no answer for: resent with --client-id,
else reported as of unknown fate). At most --window events are on their way
at once: that many may be applied without an answer if the node crashes
(they are durable all the same: an answer is only given once the event is).
--json prints one object per event:
   {"event":3,"daemon":"3f2a9c0d11e2b7a4","node":"n2","outputs":["3"]}
   {"event":4,"error":"node: event failed: ...","code":"event_failed"}

Examples:
   wasmesh send c1 a b get
   printf 'a\nb\n' | wasmesh send 3f2a9c0d11e2b7a4 --stdin
   wasmesh send c1 00ff --input-format hex --output-format base64
   seq 1 1000 | wasmesh send c1 --stdin --client-id loader-7 --retry-for 1m
   seq 1 200000 | wasmesh send c1 --stdin --json > results.ndjson`,
		Flags: clientFlags(
			&cli.BoolFlag{Name: "stdin", Usage: "read one event per line from standard input"},
			&cli.StringFlag{Name: "input-format", Value: "text", Usage: "payload encoding: text, hex or base64"},
			&cli.StringFlag{Name: "output-format", Value: "text", Usage: "output encoding: text, hex or base64"},
			&cli.DurationFlag{Name: "retry-for", Value: 15 * time.Second, Usage: "resend an undelivered event (daemon not found mid-stream; with --client-id any event whose answer was lost) for up to `DURATION`"},
			&cli.StringFlag{Name: "client-id", Usage: "exactly-once sends: number the events under this client `ID` (1-64 printable characters)"},
			&cli.Uint64Flag{Name: "first-event-id", Value: 1, Usage: "with --client-id, the id of the first event (ids go up by one per event)"},
			&cli.IntFlag{Name: "window", Value: 4096, Usage: "with --stdin, at most `N` events sent and not yet answered (1: one at a time)"},
			&cli.BoolFlag{Name: "json", Usage: "with --stdin, print one JSON object per event: event (its line), outputs (in --output-format), duplicate, or error and code"},
		),
		Action: sendAction,
	}
}

func sendAction(c *cli.Context) error {
	if c.NArg() < 1 {
		return fail(2, "send needs a DAEMON (see wasmesh send --help)")
	}
	inFmt, err := payload.ParseFormat(c.String("input-format"))
	if err != nil {
		return fail(2, "--input-format: %v", err)
	}
	outFmt, err := payload.ParseFormat(c.String("output-format"))
	if err != nil {
		return fail(2, "--output-format: %v", err)
	}
	args := c.Args().Slice()[1:]
	if c.Bool("json") && !c.Bool("stdin") {
		return fail(2, "--json needs --stdin")
	}
	if c.Bool("stdin") && len(args) > 0 {
		return fail(2, "give payloads as arguments or with --stdin, not both")
	}
	// Decode every argument first: a malformed one refuses the whole
	// command before any event is sent.
	var events [][]byte
	for i, a := range args {
		b, err := inFmt.Decode(a)
		if err != nil {
			return fail(2, "payload %d: %v", i+1, err)
		}
		events = append(events, b)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	daemon := c.Args().First()
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	// Text outputs are the daemon's own bytes and stay byte-exact in a pipe;
	// on a terminal a hostile daemon could drive it, so there they are escaped.
	escapeOut := outFmt == payload.Text && isTerminal(c.App.Writer)
	failed := 0
	if c.Duration("retry-for") < 0 {
		return fail(2, "--retry-for must not be negative")
	}
	rs := resender{cl: cl, daemon: daemon, retryFor: c.Duration("retry-for"), client: c.String("client-id"), next: c.Uint64("first-event-id")}
	if rs.client == "" && c.IsSet("first-event-id") {
		return fail(2, "--first-event-id needs --client-id")
	}
	if rs.client != "" && rs.next == 0 {
		return fail(2, "--first-event-id: client event ids start at 1")
	}
	send := func(n int, p []byte) error {
		res, err := rs.send(c.Context, p)
		if err != nil {
			w.Flush()
			if eventOnly(err) {
				fmt.Fprintf(c.App.ErrWriter, "error: event %d: %s\n", n, termSafe(err.Error(), false))
				failed++
				return nil
			}
			return apiFail(err)
		}
		if res.Duplicate {
			w.Flush()
			fmt.Fprintf(c.App.ErrWriter, "event %d: already applied (client %s, event id %d)\n", n, rs.client, rs.next-1)
		}
		for _, o := range res.Outputs {
			if escapeOut {
				w.WriteString(termSafe(string(o), false))
			} else {
				w.WriteString(outFmt.Encode(o))
			}
			w.WriteByte('\n')
		}
		return nil
	}
	if c.Bool("stdin") {
		if err := sendStdin(c, cl, daemon, &rs, inFmt, outFmt, escapeOut, w, &failed); err != nil {
			return err
		}
	} else {
		if len(events) == 0 {
			return fail(2, "nothing to send: give PAYLOAD arguments or --stdin")
		}
		for i, p := range events {
			if err := send(i+1, p); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		w.Flush()
		return fail(1, "%d event(s) failed", failed)
	}
	return nil
}
