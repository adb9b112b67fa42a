package main

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// progressThreshold is the module size from which deploy shows progress.
const progressThreshold = 1 << 20

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:      "deploy",
		Usage:     "upload a module to a node; prints its digest",
		ArgsUsage: "MODULE.wasm",
		Description: `Validates and stores the module on the node (which serves it to peers that
need it) and prints its digest, sha256:<hex>. --kind gives it a name to spawn
by (1-64 characters from [A-Za-z0-9._-], starting with a letter or digit).
A kind name that already names another module is refused (the error says
which) unless --force re-points it; running daemons keep their module. A module the node refuses (wrong ABI, forbidden import, _start...) exits 2
with the reason.

Examples:
   wasmesh deploy plugins/examples/counter-wat/counter-wat.wasm --kind counter
   wasmesh deploy big.wasm --node http://10.0.0.5:7401 --token-file admin.token
   wasmesh deploy counter-v2.wasm --kind counter --force`,
		Flags: clientFlags(
			&cli.StringFlag{Name: "kind", Usage: "kind `NAME` to register the module under"},
			&cli.BoolFlag{Name: "force", Usage: "re-point --kind if it already names another module"},
			jsonFlag(),
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "exactly one MODULE.wasm"); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			path := c.Args().First()
			f, err := os.Open(path)
			if err != nil {
				return fail(2, "read module: %v", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return fail(2, "read module: %v", err)
			}
			var r io.Reader = f
			if st.Size() >= progressThreshold {
				r = withProgress(c.App.ErrWriter, f, st.Size(), "deploy "+path)
			}
			k, err := cl.DeployForce(c.Context, r, c.String("kind"), c.Bool("force"))
			if err != nil {
				return apiFail(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, k)
			}
			fmt.Fprintln(c.App.Writer, k.Digest)
			return nil
		},
	}
}

// withProgress shows upload progress as a bar when stderr is a terminal.
// Piped or redirected, it shows nothing: lines of percentages are noise in
// a log, and the digest on stdout (or the error) says how it ended.
func withProgress(w io.Writer, r io.Reader, size int64, what string) io.Reader {
	if !isTerminal(w) {
		return r
	}
	bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription(what), progressbar.OptionClearOnFinish())
	rd := progressbar.NewReader(r, bar)
	return &rd
}
