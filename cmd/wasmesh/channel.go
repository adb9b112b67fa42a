package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/payload"
	"github.com/wasmesh/wasmesh/internal/token"
	"github.com/wasmesh/wasmesh/node/admin"
)

// publishBatch is how many payloads one publish request carries: well
// under admin.MaxPublishPayloads, and small enough that a full channel
// holding one request back does not hold back a huge body.
const publishBatch = 10_000

func channelCommand() *cli.Command {
	sub := []*cli.Command{channelCreateCommand(), channelLsCommand()}
	for _, c := range sub {
		c.OnUsageError = usageError
	}
	return &cli.Command{
		Name:  "channel",
		Usage: "create and list publish/subscribe channels",
		Description: `A channel is a named stream of messages ('orders/eu': '/'-separated segments
of [a-z0-9._-]) homed on one node of the cluster. Daemons subscribe to it
(wasmesh subscribe) and get every message published to it (wasmesh publish,
or a daemon's own publish) in order; a subscription follows its daemon
across migrations. A restricted channel admits only subscribes and
publishes that present a permission token (wasmesh token) whose chain
starts at one of its trusted issuer keys.

Examples:
   wasmesh channel create orders/eu
   wasmesh channel create payments --restricted --trust ops.key
   wasmesh channel ls`,
		Subcommands: sub,
	}
}

func channelCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a channel (again with the same definition: no change)",
		ArgsUsage: "NAME",
		Description: `Creates channel NAME at its home node, which the cluster picks from the
name; any node can be asked. Creating it again with the same definition
changes nothing; with another definition it is refused (channel_exists).

--restricted makes every subscribe and publish need a permission token;
--trust gives the issuer keys whose tokens it accepts (64-hex public key,
or a key file from 'wasmesh token keygen', whose public key is used; the
private key never leaves this machine). A restricted channel needs at least
one --trust; an open channel takes none.

Examples:
   wasmesh channel create orders/eu
   wasmesh token keygen -o ops.key
   wasmesh channel create payments --restricted --trust ops.key
   wasmesh channel create audit --restricted --trust 9f86d0...0a --trust ops2.key`,
		Flags: clientFlags(
			&cli.BoolFlag{Name: "restricted", Usage: "admit only subscribes and publishes with a permission token"},
			&cli.StringSliceFlag{Name: "trust", Usage: "trust tokens issued by `PUBKEY` (64 hex, or a key file; repeatable)"},
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "exactly one NAME"); err != nil {
				return err
			}
			name := c.Args().First()
			if err := channel.ValidName(name); err != nil {
				return fail(2, "%v", err)
			}
			def := admin.ChannelDef{Name: name, Restricted: c.Bool("restricted")}
			for _, s := range c.StringSlice("trust") {
				k, err := readPub(s)
				if err != nil {
					return err
				}
				def.Trusted = append(def.Trusted, hex.EncodeToString(k))
			}
			switch {
			case def.Restricted && len(def.Trusted) == 0:
				return fail(2, "--restricted needs at least one --trust PUBKEY (else no token could ever be accepted)")
			case !def.Restricted && len(def.Trusted) > 0:
				return fail(2, "--trust is for restricted channels: add --restricted")
			case len(def.Trusted) > channel.MaxTrusted:
				return fail(2, "%d --trust keys, at most %d", len(def.Trusted), channel.MaxTrusted)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			info, err := cl.CreateChannel(c.Context, def)
			if err != nil {
				return apiFail(err)
			}
			kind := "open"
			if info.Restricted {
				kind = fmt.Sprintf("restricted, %d trusted issuer%s", len(info.Trusted), plural(len(info.Trusted)))
			}
			fmt.Fprintf(c.App.Writer, "channel %s created, home %s (%s)\n", termSafe(info.Name, false), termSafe(dash(info.Home), false), kind)
			return nil
		},
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func channelLsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the cluster's channels",
		Description: `Lists every channel: its home node, subscribers, messages published and
delivered, messages queued for subscribers (summed over them, in flight
included) and publishes refused because a subscriber's queue stayed full.
--json prints the node's listing, with each subscriber and the channel's
stream and seq.

Examples:
   wasmesh channel ls
   wasmesh channel ls --json | jq '.[] | select(.full > 0) | .name'`,
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0, "no arguments"); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			cs, err := cl.Channels(c.Context)
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				if cs == nil {
					cs = []admin.ChannelInfo{}
				}
				return printJSON(c.App.Writer, cs)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tHOME\tSUBSCRIBERS\tPUBLISHED\tDELIVERED\tQUEUED\tFULL")
			for _, ch := range cs {
				queued := 0
				for _, s := range ch.Subscribers {
					queued += s.Queued
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", termSafe(dash(ch.Name), false), termSafe(dash(ch.Home), false),
					len(ch.Subscribers), ch.Published, ch.Delivered, queued, ch.Full)
			}
			return tw.Flush()
		},
	}
}

func tokenFlag() cli.Flag {
	return &cli.StringFlag{Name: "token", Usage: "permission token `FILE` (from 'wasmesh token issue -o FILE'), needed on a restricted channel"}
}

// maxTokenFile bounds what is read of a --token file; a token's text form
// is far smaller (token.Parse bounds it exactly).
const maxTokenFile = 1 << 20

// readPermToken reads --token: the text form, checked here so that a wrong
// file is refused before any request, and sent as it is.
func readPermToken(c *cli.Context) (string, error) {
	path := c.String("token")
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fail(2, "--token: %v", err)
	}
	defer f.Close()
	text, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", fail(2, "--token: %v", err)
	}
	if _, err := token.Parse(text); err != nil {
		return "", fail(2, "--token %s: not a permission token: %v", path, err)
	}
	return strings.TrimSpace(string(text)), nil
}

// daemonChannelArgs is the preamble of subscribe and unsubscribe.
func daemonChannelArgs(c *cli.Context) (daemon, ch string, err error) {
	if err := needArgs(c, 2, "a DAEMON and a CHANNEL"); err != nil {
		return "", "", err
	}
	daemon, ch = c.Args().Get(0), c.Args().Get(1)
	if err := channel.ValidName(ch); err != nil {
		return "", "", fail(2, "%v", err)
	}
	return daemon, ch, nil
}

func subscribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "subscribe",
		Usage:     "subscribe a daemon to a channel",
		ArgsUsage: "DAEMON CHANNEL",
		Description: `Subscribes DAEMON (an id or a name, anywhere in the cluster) to CHANNEL: from
then on the daemon gets every message published to it, in order, as events.
The subscription is recorded in the daemon's ledger once the channel's home
accepted it, and follows the daemon across migrations and restarts.
On a restricted channel, --token gives a token with the subscribe scope whose
subject is the daemon (its entity id: 'wasmesh token issue --subject DAEMON').

Examples:
   wasmesh subscribe c1 orders/eu
   wasmesh token issue --key ops.key --subject c1 --scope subscribe --channel payments -o c1.tok
   wasmesh subscribe c1 payments --token c1.tok`,
		Flags: clientFlags(tokenFlag()),
		Action: func(c *cli.Context) error {
			daemon, ch, err := daemonChannelArgs(c)
			if err != nil {
				return err
			}
			tok, err := readPermToken(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			s, err := cl.Subscribe(c.Context, daemon, ch, tok)
			if err != nil {
				return apiFail(err)
			}
			with := ""
			if s.Token {
				with = ", with a token"
			}
			fmt.Fprintf(c.App.Writer, "subscribed %s to %s (sub %s%s)\n", termSafe(dash(s.Daemon), false), termSafe(s.Channel, false), termSafe(dash(s.Sub), false), with)
			return nil
		},
	}
}

func unsubscribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "unsubscribe",
		Usage:     "remove a daemon's subscription to a channel",
		ArgsUsage: "DAEMON CHANNEL",
		Description: `Removes DAEMON's subscription to CHANNEL from its ledger and at the channel's
home; messages published after it are not delivered to the daemon.
A daemon that is not subscribed is an error (not_subscribed).

Examples:
   wasmesh unsubscribe c1 orders/eu`,
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			daemon, ch, err := daemonChannelArgs(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			if err := cl.Unsubscribe(c.Context, daemon, ch); err != nil {
				return apiFail(err)
			}
			fmt.Fprintf(c.App.Writer, "unsubscribed %s from %s\n", termSafe(daemon, false), ch)
			return nil
		},
	}
}

func subscriptionsCommand() *cli.Command {
	return &cli.Command{
		Name:      "subscriptions",
		Usage:     "list a daemon's subscriptions",
		ArgsUsage: "DAEMON",
		Description: `Lists the channels DAEMON is subscribed to, from its ledger: the
subscription's id at the channel's home (SUB; "pending" while the daemon's
node has not heard it back after a restart or a move) and whether it was
made with a permission token.

Examples:
   wasmesh subscriptions c1
   wasmesh subscriptions c1 --json | jq -r '.[].channel'`,
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			cl, daemon, err := daemonClient(c)
			if err != nil {
				return err
			}
			subs, err := cl.Subscriptions(c.Context, daemon)
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				if subs == nil {
					subs = []admin.SubscriptionInfo{}
				}
				return printJSON(c.App.Writer, subs)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CHANNEL\tDAEMON\tSUB\tTOKEN")
			for _, s := range subs {
				sub := s.Sub
				if sub == "" {
					sub = "pending"
				}
				tok := "no"
				if s.Token {
					tok = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termSafe(dash(s.Channel), false), termSafe(dash(s.Daemon), false), termSafe(sub, false), tok)
			}
			return tw.Flush()
		},
	}
}

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "publish messages to a channel, from outside the mesh",
		ArgsUsage: "CHANNEL [PAYLOAD]...",
		Description: `Each PAYLOAD argument (or, with --stdin, each line of standard input) is one
message, published to CHANNEL in order; every subscriber gets them in that
order. --input-format reads payloads as text, hex or base64, as send does.
Messages go in requests of at most 10,000; on a terminal, stderr shows how
many went so far. The command prints what was published and the channel seqs
the messages got:
   published 3 to orders/eu (home n2, seq 41..43)

A full channel (a subscriber's queue stayed full for --timeout) fails the
request (channel_full, exit 1); the requests before it were published.
With --client, the publish is exactly-once: message i is the client's
message --first-id+i, and one the channel already accepted is counted as a
duplicate instead of being published again. To continue after a failure,
run the same command again with the same --client and --first-id: what was
published is answered as duplicates. Without --client a rerun publishes
again.

On a restricted channel, --token gives a token with the publish scope.

Examples:
   wasmesh publish orders/eu hello world
   wasmesh publish orders/eu 00ff --input-format hex
   seq 1 100000 | wasmesh publish orders/eu --stdin --client loader-1
   wasmesh publish payments --stdin --token pub.tok < batch.txt`,
		Flags: clientFlags(
			&cli.BoolFlag{Name: "stdin", Usage: "read one message per line from standard input"},
			&cli.StringFlag{Name: "input-format", Value: "text", Usage: "payload encoding: text, hex or base64"},
			tokenFlag(),
			&cli.StringFlag{Name: "client", Usage: "exactly-once publishes: number the messages under this client `ID`"},
			&cli.Uint64Flag{Name: "first-id", Value: 1, Usage: "with --client, the id of the first message (ids go up by one per message)"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "a full channel may hold one request up to `DURATION`, then it fails"},
		),
		Action: publishAction,
	}
}

// publishTotals adds up the answers of a publish's requests.
type publishTotals struct {
	channel, home       string
	accepted, dups      int
	firstSeq, lastSeq   uint64
	requests, published int
}

func (t *publishTotals) add(res admin.PublishResult, n int) {
	t.requests++
	t.published += n
	t.home = res.Home
	t.accepted += res.Accepted
	t.dups += res.Duplicates
	if res.Accepted > 0 {
		if t.firstSeq == 0 {
			t.firstSeq = res.FirstSeq
		}
		t.lastSeq = res.LastSeq
	}
}

func (t *publishTotals) String() string {
	s := fmt.Sprintf("published %d to %s (home %s", t.accepted, t.channel, termSafe(dash(t.home), false))
	if t.accepted > 0 {
		s += fmt.Sprintf(", seq %d..%d", t.firstSeq, t.lastSeq)
	}
	s += ")"
	if t.dups > 0 {
		s += fmt.Sprintf(", %d duplicate%s (already published under this client)", t.dups, plural(t.dups))
	}
	return s
}

func publishAction(c *cli.Context) error {
	if c.NArg() < 1 {
		return fail(2, "publish needs a CHANNEL (see wasmesh publish --help)")
	}
	ch := c.Args().First()
	if err := channel.ValidName(ch); err != nil {
		return fail(2, "%v", err)
	}
	inFmt, err := payload.ParseFormat(c.String("input-format"))
	if err != nil {
		return fail(2, "--input-format: %v", err)
	}
	args := c.Args().Slice()[1:]
	useStdin := c.Bool("stdin")
	switch {
	case useStdin && len(args) > 0:
		return fail(2, "give payloads as arguments or with --stdin, not both")
	case !useStdin && len(args) == 0:
		return fail(2, "nothing to publish: give PAYLOAD arguments or --stdin")
	}
	client, next := c.String("client"), c.Uint64("first-id")
	switch {
	case client == "" && c.IsSet("first-id"):
		return fail(2, "--first-id needs --client")
	case client != "" && next == 0:
		return fail(2, "--first-id: client message ids start at 1")
	}
	timeout := c.Duration("timeout")
	if timeout < time.Millisecond {
		return fail(2, "--timeout %s: want at least 1ms", timeout)
	}
	// Decode every argument first: a malformed one refuses the whole
	// command before anything is published.
	var msgs [][]byte
	for i, a := range args {
		b, err := inFmt.Decode(a)
		if err != nil {
			return fail(2, "payload %d: %v", i+1, err)
		}
		msgs = append(msgs, b)
	}
	tok, err := readPermToken(c)
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	tot := &publishTotals{channel: ch}
	progress, done := publishProgress(c.App.ErrWriter)
	send := func(batch [][]byte) error {
		body := admin.PublishBody{Channel: ch, Payloads: batch, Token: tok, TimeoutMs: timeout.Milliseconds()}
		if client != "" {
			body.Client, body.FirstID = client, next
		}
		res, err := cl.Publish(c.Context, body)
		if err != nil {
			return apiFail(err)
		}
		next += uint64(len(batch))
		tot.add(res, len(batch))
		progress(tot.published)
		return nil
	}
	if useStdin {
		err = publishStdin(c.App.Reader, inFmt, send)
	} else {
		for len(msgs) > 0 && err == nil {
			n := min(len(msgs), publishBatch)
			err = send(msgs[:n])
			msgs = msgs[n:]
		}
	}
	done()
	if err != nil {
		// Requests before the failure were published: say what they did,
		// so a rerun (with --client, safe) knows where it stands.
		if tot.requests > 0 {
			fmt.Fprintln(c.App.ErrWriter, "before the failure: "+tot.String())
		}
		return err
	}
	if tot.requests == 0 {
		return fail(2, "nothing to publish: standard input was empty")
	}
	fmt.Fprintln(c.App.Writer, tot.String())
	return nil
}

// publishStdin reads stdin with send --stdin's reader (one message per
// line, bounded) and hands send batches of publishBatch in order. A line
// that does not decode stops it: the whole batches before it were
// published.
func publishStdin(r io.Reader, inFmt payload.Format, send func([][]byte) error) error {
	in := &streamSend{input: make(chan []streamRaw, 8)}
	go in.readInput(r)
	// On an early return the reader may be blocked handing on a batch:
	// drain it so it ends with the input.
	defer func() {
		go func() {
			for range in.input {
			}
		}()
	}()
	batch := make([][]byte, 0, publishBatch)
	for lines := range in.input {
		for _, l := range lines {
			b, err := inFmt.Decode(string(l.line))
			if err != nil {
				return fail(2, "line %d: %v", l.n, err)
			}
			batch = append(batch, b)
			if len(batch) == publishBatch {
				if err := send(batch); err != nil {
					return err
				}
				batch = make([][]byte, 0, publishBatch)
			}
		}
	}
	in.mu.Lock()
	inErr := in.inErr
	in.mu.Unlock()
	if inErr != nil {
		return fail(1, "reading stdin: %v", inErr)
	}
	if len(batch) > 0 {
		return send(batch)
	}
	return nil
}

// publishProgress counts published messages on stderr when it is a
// terminal; in a pipe or a file it stays quiet (the summary line says it).
func publishProgress(w io.Writer) (func(n int), func()) {
	if !isTerminal(w) {
		return func(int) {}, func() {}
	}
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("publishing"),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	return func(n int) { _ = bar.Set(n) }, func() { _ = bar.Finish() }
}
