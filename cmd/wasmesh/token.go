package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/token"
)

func tokenCommand() *cli.Command {
	sub := []*cli.Command{tokenKeygenCommand(), tokenIssueCommand(), tokenDelegateCommand(), tokenInspectCommand()}
	for _, c := range sub {
		c.OnUsageError = usageError
	}
	return &cli.Command{
		Name:  "token",
		Usage: "make and inspect permission tokens for restricted channels",
		Description: `A permission token is an ed25519-signed grant: an issuer key gives a subject
key (a daemon's entity id, which is its public key, or a client's key) scopes
(publish, subscribe, delegate, admin) on a channel pattern ('orders/eu'
exactly, 'orders/*' for everything under orders/, '*' for all) for a time
window. A holder with the delegate scope can hand on a narrower token; the
child embeds its parent, so one file carries the whole chain. A restricted
channel trusts a set of root issuer keys.

Examples:
   wasmesh token keygen -o ops.key
   wasmesh token keygen -o client.key
   wasmesh token issue --key ops.key --subject client.key --scope subscribe,delegate --channel 'orders/*' -o client.tok
   wasmesh token delegate --token client.tok --key client.key --subject 3b6a...e1 --scope subscribe --channel orders/eu --ttl 1h -o d.tok
   wasmesh token inspect d.tok --verify-trust ops.key`,
		Subcommands: sub,
	}
}

func tokenKeygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "write a new ed25519 private key file and print its public key",
		Description: `Writes a new private key to FILE (mode 0600, text 'wasmesh-key-v1:...') and
prints the public key in hex, which is what --subject and --verify-trust take.
An existing FILE is never overwritten.

Examples:
   wasmesh token keygen -o ops.key`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "write the key to `FILE`"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fail(2, "token keygen takes no arguments (see wasmesh token keygen --help)")
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return fail(1, "generate key: %v", err)
			}
			f, err := os.OpenFile(c.String("out"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fail(2, "%s exists; keygen never overwrites a key", c.String("out"))
			}
			if err != nil {
				return fail(1, "write key: %v", err)
			}
			if _, err := f.Write(token.MarshalKey(priv)); err != nil {
				f.Close()
				return fail(1, "write key: %v", err)
			}
			if err := f.Close(); err != nil {
				return fail(1, "write key: %v", err)
			}
			fmt.Fprintln(c.App.Writer, hex.EncodeToString(pub))
			return nil
		},
	}
}

func grantFlags(keyUsage string) []cli.Flag {
	return clientFlags(
		&cli.StringFlag{Name: "key", Required: true, Usage: keyUsage},
		&cli.StringFlag{Name: "subject", Required: true, Usage: "grant to `SUBJECT`: a 64-hex public key or entity id, a key file, or a daemon's name or id (looked up through --node)"},
		&cli.StringFlag{Name: "scope", Required: true, Usage: "`SCOPES`, comma-separated: publish, subscribe, delegate, admin"},
		&cli.StringFlag{Name: "channel", Required: true, Usage: "channel `PATTERN`: 'orders/eu', 'orders/*' or '*'"},
		&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "valid for `DURATION` from --not-before"},
		&cli.StringFlag{Name: "not-before", Usage: "valid from `TIME`: RFC3339 or a duration from now (default now)"},
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "write the token to `FILE` (default: print it)"},
	)
}

func tokenIssueCommand() *cli.Command {
	return &cli.Command{
		Name:  "issue",
		Usage: "sign a root token with an issuer key",
		Description: `Signs a token granting --scope on --channel to --subject for --ttl. Channels
that trust the issuer's public key accept it.

--subject is a 64-hex public key (a client's key from 'wasmesh token keygen',
or a daemon's entity id as 'wasmesh stats DAEMON --json' shows it), a key
file, or a daemon's name or id, which the node at --node resolves to its
entity id. A daemon's token names its identity, not its node: it keeps
working after the daemon migrates.

Examples:
   wasmesh token issue --key ops.key --subject client.key --scope subscribe --channel 'orders/*' -o client.tok
   wasmesh token issue --key ops.key --subject 3b6a...e1 --scope publish,subscribe --channel orders/eu --ttl 720h --not-before 2026-01-01T00:00:00Z`,
		Flags:  grantFlags("sign with the issuer key `FILE`"),
		Action: func(c *cli.Context) error { return grantAction(c, nil) },
	}
}

func tokenDelegateCommand() *cli.Command {
	flags := append(grantFlags("sign with the holder key `FILE` (the parent token's subject)"),
		&cli.StringFlag{Name: "token", Required: true, Usage: "the parent token `FILE` (it needs the delegate scope)"})
	return &cli.Command{
		Name:  "delegate",
		Usage: "hand on a narrower token from one you hold",
		Description: `Signs a child of --token with the holder's key. The child may grant no more
scopes, channels or time than its parent, and the parent must have the
delegate scope. Without --ttl the child ends when its parent does (or after
24h, whichever is sooner); without --not-before it starts now or when its
parent does, whichever is later.

Examples:
   wasmesh token delegate --token client.tok --key client.key --subject 3b6a...e1 --scope subscribe --channel orders/eu --ttl 1h -o d.tok`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			text, err := os.ReadFile(c.String("token"))
			if err != nil {
				return fail(2, "read token: %v", err)
			}
			parent, err := token.Parse(text)
			if err != nil {
				return fail(2, "%s: %v", c.String("token"), err)
			}
			return grantAction(c, &parent)
		},
	}
}

func readKey(path string) (ed25519.PrivateKey, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fail(2, "read key: %v", err)
	}
	k, err := token.ParseKey(text)
	if err != nil {
		return nil, fail(2, "%s: %v", path, err)
	}
	return k, nil
}

// readPub takes a 64-hex key first: it is what operators copy around, and a
// file of that name is unlikely.
func readPub(s string) (ed25519.PublicKey, error) {
	if len(s) == 2*ed25519.PublicKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	k, err := readKey(s)
	if err != nil {
		return nil, fail(2, "%q is neither a 64-hex public key nor a readable key file", s)
	}
	return k.Public().(ed25519.PublicKey), nil
}

// resolveSubject is readPub, and failing that a daemon the node knows by
// that name or id.
func resolveSubject(c *cli.Context, s string) (ed25519.PublicKey, error) {
	if len(s) == 2*ed25519.PublicKeySize {
		if _, err := hex.DecodeString(s); err == nil {
			return readPub(s)
		}
	}
	if _, err := os.Stat(s); err == nil {
		return readPub(s)
	}
	cl, err := newClient(c)
	if err != nil {
		return nil, err
	}
	info, err := cl.Stats(c.Context, s)
	if err != nil {
		return nil, fail(2, "--subject %q: not a 64-hex key or a key file, and not a daemon the node knows: %v", s, err)
	}
	b, err := hex.DecodeString(info.Entity)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fail(1, "--subject %q: the node did not report an entity id (an older node?)", s)
	}
	return b, nil
}

func grantAction(c *cli.Context, parent *token.Token) error {
	if c.NArg() != 0 {
		return fail(2, "unexpected argument %q (see --help)", c.Args().First())
	}
	key, err := readKey(c.String("key"))
	if err != nil {
		return err
	}
	sub, err := resolveSubject(c, c.String("subject"))
	if err != nil {
		return err
	}
	scopes, err := token.ParseScope(c.String("scope"))
	if err != nil {
		return fail(2, "--scope: %v", err)
	}
	pat, err := token.ParsePattern(c.String("channel"))
	if err != nil {
		return fail(2, "--channel: %v", err)
	}
	now := time.Now()
	nb := now
	if s := c.String("not-before"); s != "" {
		if d, derr := time.ParseDuration(s); derr == nil {
			nb = now.Add(d)
		} else if t, terr := time.Parse(time.RFC3339, s); terr == nil {
			nb = t
		} else {
			return fail(2, "--not-before %q: want RFC3339 or a duration", s)
		}
	} else if parent != nil && time.Unix(parent.NotBefore, 0).After(nb) {
		nb = time.Unix(parent.NotBefore, 0)
	}
	if c.Duration("ttl") <= 0 {
		return fail(2, "--ttl %s: want a positive duration", c.Duration("ttl"))
	}
	exp := nb.Add(c.Duration("ttl"))
	if parent != nil && !c.IsSet("ttl") && exp.Unix() > parent.Expiry {
		exp = time.Unix(parent.Expiry, 0)
	}
	claims := token.Claims{Subject: sub, Scopes: scopes, Channel: pat, NotBefore: nb, Expiry: exp}
	var t token.Token
	if parent == nil {
		t, err = token.Issue(key, claims)
	} else {
		t, err = token.Delegate(*parent, key, claims)
	}
	if err != nil {
		return fail(2, "%v", err)
	}
	out := t.String() + "\n"
	if path := c.String("out"); path != "" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			return fail(1, "write token: %v", err)
		}
		fmt.Fprintf(c.App.Writer, "wrote %s: %s on %s to %s until %s\n", path, t.Scopes, t.Channel,
			hex.EncodeToString(t.Subject[:]), time.Unix(t.Expiry, 0).UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprint(c.App.Writer, out)
	return nil
}

// inspectLink is one token of a chain, leaf first, as --json prints it.
type inspectLink struct {
	Issuer    string `json:"issuer"`
	Subject   string `json:"subject"`
	Scopes    string `json:"scopes"`
	Channel   string `json:"channel"`
	NotBefore string `json:"not_before"`
	Expiry    string `json:"expiry"`
}

type inspectOut struct {
	inspectLink
	Depth    int           `json:"depth"`
	Expired  bool          `json:"expired"`
	NotYet   bool          `json:"not_yet_valid"`
	Chain    []inspectLink `json:"chain"`
	Verified *bool         `json:"verified,omitempty"`
	Error    string        `json:"verify_error,omitempty"`
}

func tokenInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show what a token grants, to whom, until when, and through which chain",
		ArgsUsage: "FILE",
		Description: `Prints the token's issuer, subject, scopes, channel pattern and validity
window, whether it is expired now, and its delegation chain (leaf first).
--verify-trust checks every signature and delegation link and that the root
issuer is the given key; the command then exits 1 if the token would be
refused.

Examples:
   wasmesh token inspect client.tok
   wasmesh token inspect d.tok --json --verify-trust 9f86...0a`,
		Flags: []cli.Flag{
			jsonFlag(),
			&cli.StringSliceFlag{Name: "verify-trust", Usage: "verify the chain against root issuer `PUBKEY` (64 hex or key file; repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fail(2, "token inspect needs exactly one FILE (see wasmesh token inspect --help)")
			}
			text, err := os.ReadFile(c.Args().First())
			if err != nil {
				return fail(2, "read token: %v", err)
			}
			t, err := token.Parse(text)
			if err != nil {
				return fail(2, "%s: %v", c.Args().First(), err)
			}
			now := time.Now().Unix()
			out := inspectOut{inspectLink: tokenLink(t), Depth: t.Depth(), Expired: now >= t.Expiry, NotYet: now < t.NotBefore}
			for p := &t; p != nil; p = p.Parent {
				out.Chain = append(out.Chain, tokenLink(*p))
			}
			var verr error
			if c.IsSet("verify-trust") {
				var opts token.VerifyOptions
				for _, s := range c.StringSlice("verify-trust") {
					k, err := readPub(s)
					if err != nil {
						return err
					}
					opts.Trusted = append(opts.Trusted, k)
				}
				opts.MaxDepth = token.HardMaxDepth
				verr = token.VerifyChain(t, opts)
				ok := verr == nil
				out.Verified = &ok
				if verr != nil {
					out.Error = verr.Error()
				}
			}
			if c.Bool("json") {
				if err := json.NewEncoder(c.App.Writer).Encode(out); err != nil {
					return fail(1, "%v", err)
				}
			} else {
				printTokenInspect(c, out)
			}
			if verr != nil {
				return fail(1, "not verified: %v", verr)
			}
			return nil
		},
	}
}

func tokenLink(t token.Token) inspectLink {
	return inspectLink{
		Issuer:    hex.EncodeToString(t.Issuer[:]),
		Subject:   hex.EncodeToString(t.Subject[:]),
		Scopes:    t.Scopes.String(),
		Channel:   string(t.Channel),
		NotBefore: time.Unix(t.NotBefore, 0).UTC().Format(time.RFC3339),
		Expiry:    time.Unix(t.Expiry, 0).UTC().Format(time.RFC3339),
	}
}

func printTokenInspect(c *cli.Context, o inspectOut) {
	w := c.App.Writer
	state := "valid now"
	switch {
	case o.Expired:
		state = "EXPIRED"
	case o.NotYet:
		state = "not yet valid"
	}
	fmt.Fprintf(w, "issuer   %s\nsubject  %s\nscopes   %s\nchannel  %s\nvalid    %s .. %s (%s)\n",
		o.Issuer, o.Subject, o.Scopes, o.Channel, o.NotBefore, o.Expiry, state)
	if len(o.Chain) > 1 {
		fmt.Fprintf(w, "chain    %d tokens, leaf first:\n", len(o.Chain))
		for i, l := range o.Chain {
			fmt.Fprintf(w, "  %d. %s -> %s  %s on %s  %s .. %s\n", i+1, l.Issuer[:16], l.Subject[:16], l.Scopes, l.Channel, l.NotBefore, l.Expiry)
		}
	} else {
		fmt.Fprintln(w, "chain    root token (no delegation)")
	}
	if o.Verified != nil {
		if *o.Verified {
			fmt.Fprintln(w, "verified signatures, delegation and root issuer OK")
		} else {
			fmt.Fprintf(w, "verified FAILED: %s\n", strings.TrimSpace(o.Error))
		}
	}
}
