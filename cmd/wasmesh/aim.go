package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/node/admin"
)

// aimAt returns a client for the admin API of member ref (name, id or id
// prefix), as the cluster announces it: daemon keys go straight to the node
// that keeps them instead of being relayed through another.
func aimAt(ctx context.Context, cl *admin.Client, ref string) (*admin.Client, error) {
	ns, err := cl.Nodes(ctx)
	if err != nil {
		return nil, apiFail(err)
	}
	var hits []admin.NodeInfo
	for _, n := range ns {
		if n.Name == ref || n.ID == ref || (len(ref) >= 4 && strings.HasPrefix(n.ID, ref)) {
			hits = append(hits, n)
		}
	}
	switch {
	case len(hits) == 0:
		return nil, fail(1, "no member named %q (see wasmesh nodes)", ref)
	case len(hits) > 1:
		return nil, fail(2, "%q matches %d members; give the full name or id", ref, len(hits))
	case hits[0].Local:
		return cl, nil
	case hits[0].Admin == "":
		return nil, fail(1, "node %s does not announce an admin URL; run the command with --node pointing at it", hits[0].Name)
	}
	return &admin.Client{Base: hits[0].Admin, Token: cl.Token, HTTP: cl.HTTP}, nil
}

// keyFile reads a daemon key file, creating it (mode 0600) when create is
// set and it does not exist yet.
func keyFile(path string, create bool) ([]byte, error) {
	if create {
		if _, _, err := identity.LoadOrCreate(path); err != nil {
			return nil, fail(2, "--key: %v", err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fail(2, "--key: %v", err)
	}
	if _, err := identity.Parse(b); err != nil {
		return nil, fail(2, "--key %s: %v", path, err)
	}
	return b, nil
}

func expectCommand() *cli.Command {
	return &cli.Command{
		Name:      "expect",
		Usage:     "prepare a node to receive a daemon by migration (its key, its module)",
		ArgsUsage: "DAEMON",
		Description: `Prepares node --on for a migration of DAEMON (an id or name, wherever it
runs): the node fetches the daemon's module if it lacks it and, with --key,
registers the daemon's key, so that 'wasmesh migrate DAEMON --to NODE
--no-identity' can land there without the key travelling in the migration.
The key file is the one given to 'wasmesh spawn --key' (it never leaves the
machines you copy it to; the CLI hands it to NODE's own admin API). Without
--key the node expects the daemon with its key sealed in the migration.
--kind checks (or, for a daemon not running anywhere, names) its module.

Examples:
   wasmesh spawn counter --name c1 --key c1.key
   wasmesh expect c1 --on node-b --key c1.key
   wasmesh migrate c1 --to node-b --no-identity`,
		Flags: clientFlags(
			&cli.StringFlag{Name: "on", Usage: "`NODE` to prepare (name or id); default the node you talk to"},
			&cli.StringFlag{Name: "key", Usage: "daemon key `FILE` (from spawn --key)"},
			&cli.StringFlag{Name: "kind", Usage: "kind `NAME` or digest of the daemon's module"},
			jsonFlag(),
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 || (c.NArg() == 0 && !c.IsSet("key")) {
				return fail(2, "expect needs a DAEMON or --key FILE (see wasmesh expect --help)")
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			res, err := expectOn(c, cl, c.Args().First(), c.String("on"), c.String("key"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			mode := "with its key sealed in the migration"
			if res.Identity {
				mode = "holding its key (--no-identity works)"
			}
			fmt.Fprintf(c.App.Writer, "%s expects daemon %s (%s), %s\n", res.Node, res.Daemon, res.Digest, mode)
			return nil
		},
	}
}

// expectOn prepares node on for daemon; a key goes straight to that node.
func expectOn(c *cli.Context, cl *admin.Client, daemon, on, key string) (admin.ExpectResult, error) {
	req := admin.ExpectRequest{Daemon: daemon, Kind: c.String("kind"), On: on}
	if key != "" {
		b, err := keyFile(key, false)
		if err != nil {
			return admin.ExpectResult{}, err
		}
		req.Key = b
		if on != "" {
			if cl, err = aimAt(c.Context, cl, on); err != nil {
				return admin.ExpectResult{}, err
			}
			req.On = ""
		}
	}
	res, err := cl.Expect(c.Context, req)
	if err != nil {
		return admin.ExpectResult{}, apiFail(err)
	}
	return res, nil
}

// noIdentityHint tells a user whose --no-identity migration found the
// target without the key how to prepare it.
func noIdentityHint(c *cli.Context, err error) error {
	var ae *admin.APIError
	if !c.Bool("no-identity") || c.String("key") != "" || !errors.As(err, &ae) || !strings.Contains(ae.Message, "IdentityTransportFailed") {
		return err
	}
	to := c.String("to")
	if to == "" {
		to = "NODE"
	}
	hinted := *ae
	hinted.Message += fmt.Sprintf(" (prepare the target first: wasmesh expect %s --on %s --key FILE, or add --key FILE)", c.Args().First(), to)
	return &hinted
}
