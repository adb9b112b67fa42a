package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/abi"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show a module's digest, ABI, snapshot mode, exports, imports and whether wasmesh accepts it",
		ArgsUsage: "MODULE.wasm",
		Description: `Reads a module without running it. The exit status is 0 when the module is
accepted, 1 when it is refused (every reason is listed), 2 when the file is
not a wasm module at all.

Examples:
   wasmesh inspect counter.wasm
   wasmesh inspect counter.wasm --json | jq .digest`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of text"},
		},
		Action: inspectAction,
	}
}

type inspectJSON struct {
	Path     string        `json:"path"`
	Digest   string        `json:"digest"`
	Size     int           `json:"size"`
	ABI      int           `json:"abi_version"`
	Mode     string        `json:"snapshot_mode"`
	Accepted bool          `json:"accepted"`
	Problems []abi.Problem `json:"problems"`
	Exports  []abi.Export  `json:"exports"`
	Imports  []abi.Import  `json:"imports"`
	Memory   abi.Memory    `json:"memory"`
	WASI     bool          `json:"uses_wasi"`
}

func inspectAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fail(2, "inspect needs exactly one MODULE.wasm (see wasmesh inspect --help)")
	}
	path := c.Args().First()
	module, err := os.ReadFile(path)
	if err != nil {
		return fail(2, "%v", err)
	}
	info, err := abi.Inspect(module)
	if err != nil {
		return fail(2, "%s: %v", path, err)
	}
	out := inspectJSON{
		Path: path, Digest: info.Digest, Size: len(module), ABI: info.ABIVersion, Mode: info.Mode,
		Accepted: len(info.Problems) == 0, Problems: info.Problems, Exports: info.Exports, Imports: info.Imports,
		Memory: info.Memory, WASI: info.UsesWASI,
	}
	if out.Problems == nil {
		out.Problems = []abi.Problem{}
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(1, "%v", err)
		}
	} else {
		printInspect(c, out)
	}
	if !out.Accepted {
		return fail(1, "")
	}
	return nil
}

func printInspect(c *cli.Context, o inspectJSON) {
	w := c.App.Writer
	fmt.Fprintf(w, "module:   %s (%d bytes)\n", o.Path, o.Size)
	fmt.Fprintf(w, "digest:   %s\n", o.Digest)
	if o.ABI > 0 {
		fmt.Fprintf(w, "abi:      v%d\n", o.ABI)
	} else {
		fmt.Fprintf(w, "abi:      none (no %s export)\n", abi.ExportMarker)
	}
	fmt.Fprintf(w, "snapshot: %s\n", o.Mode)
	mem := fmt.Sprintf("%d pages min", o.Memory.Min)
	if o.Memory.HasMax {
		mem += fmt.Sprintf(", %d max", o.Memory.Max)
	}
	fmt.Fprintf(w, "memory:   %s\n", mem)
	if o.WASI {
		fmt.Fprintf(w, "wasi:     yes (no filesystem, no sockets, empty args/env; stdout/stderr go to the daemon log)\n")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nexports (%d):\n", len(o.Exports))
	for _, e := range o.Exports {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", termSafe(psClip(e.Name, 200), false), e.Kind, e.Signature)
	}
	fmt.Fprintf(tw, "imports (%d):\n", len(o.Imports))
	for _, i := range o.Imports {
		fmt.Fprintf(tw, "  %s.%s\t%s\t%s\n", termSafe(psClip(i.Module, 200), false), termSafe(psClip(i.Name, 200), false), i.Kind, i.Signature)
	}
	tw.Flush()
	if o.Accepted {
		fmt.Fprintf(w, "\naccepted: yes\n")
		return
	}
	fmt.Fprintf(w, "\naccepted: no\n")
	for _, p := range o.Problems {
		fmt.Fprintf(w, "  - %s: %s\n", termSafe(p.Item, true), termSafe(p.Reason, true))
	}
}
