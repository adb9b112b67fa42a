package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// defaultNodeURL is where a local `wasmesh node` serves its admin API.
const defaultNodeURL = "http://127.0.0.1:7401"

// clientFlags are shared by every verb that talks to a node.
func clientFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "node", Value: defaultNodeURL, EnvVars: []string{"WASMESH_NODE"}, Usage: "admin API `URL` of any node"},
		&cli.StringFlag{Name: "token-file", EnvVars: []string{"WASMESH_TOKEN_FILE"}, Usage: "`FILE` holding the node's admin bearer token"},
	}, extra...)
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}
}

func newClient(c *cli.Context) (*admin.Client, error) {
	tok := ""
	if f := c.String("token-file"); f != "" {
		var err error
		if tok, err = admin.ReadTokenFile(f); err != nil {
			return nil, fail(2, "%v", err)
		}
	}
	cl, err := admin.NewClient(c.String("node"), tok)
	if err != nil {
		return nil, fail(2, "%v", err)
	}
	return cl, nil
}

// apiFail turns a client error into a one-line message and the exit status
// the node's error table gives its code: 2 when the node refused the input
// itself, 1 otherwise.
func apiFail(err error) error {
	var ae *admin.APIError
	if errors.As(err, &ae) {
		return &exitError{code: ae.ExitCode(), err: ae}
	}
	return fail(1, "%v", err)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(1, "%v", err)
	}
	return nil
}

func needArgs(c *cli.Context, n int, usage string) error {
	if c.NArg() != n {
		return fail(2, "%s needs %s (see wasmesh %s --help)", c.Command.Name, usage, c.Command.Name)
	}
	return nil
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// isEventFailure reports whether the node said the event itself failed
// (the daemon is fine and later events may succeed).
func isEventFailure(err error) bool {
	return errors.Is(err, node.ErrEventFailed)
}

// daemonClient is the preamble of every verb about one DAEMON: exactly one
// argument, and a client for --node.
func daemonClient(c *cli.Context) (*admin.Client, string, error) {
	if err := needArgs(c, 1, "exactly one DAEMON"); err != nil {
		return nil, "", err
	}
	cl, err := newClient(c)
	if err != nil {
		return nil, "", err
	}
	return cl, c.Args().First(), nil
}
