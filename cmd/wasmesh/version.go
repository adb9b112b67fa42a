package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// buildVersion is what this binary knows about itself, read from the build
// info the Go toolchain embeds (no ldflags to forget in a release script).
type buildVersion struct {
	Module string `json:"version"`
	Commit string `json:"commit,omitempty"`
	// Modified: the working tree had uncommitted changes at build time.
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Wazero   string `json:"wazero"`
}

const wazeroPath = "github.com/tetratelabs/wazero"

func readVersion() buildVersion {
	v := buildVersion{Module: "dev", Go: runtime.Version(), Wazero: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v = versionOf(bi)
	v.Go = runtime.Version()
	return v
}

// versionOf is readVersion's pure half, testable with a made-up BuildInfo.
func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Module: "dev", Go: bi.GoVersion, Wazero: "unknown"}
	// "(devel)" is what go build in a checkout reports: not a version.
	if m := bi.Main.Version; m != "" && m != "(devel)" {
		v.Module = m
	}
	for _, d := range bi.Deps {
		if d.Path == wazeroPath {
			v.Wazero = d.Version
			if d.Replace != nil && d.Replace.Version != "" {
				v.Wazero = d.Replace.Version
			}
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// nodeVersion is the version a node announces to the cluster: the module
// version, plus the short commit when the module version says nothing.
func (v buildVersion) nodeVersion() string {
	if v.Module == "dev" && v.Commit != "" {
		s := "dev+" + shortCommit(v.Commit)
		if v.Modified {
			s += "-dirty"
		}
		return s
	}
	return v.Module
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func (v buildVersion) String() string {
	commit := "unknown"
	if v.Commit != "" {
		commit = v.Commit
		if v.Modified {
			commit += " (modified)"
		}
	}
	return fmt.Sprintf("wasmesh %s\n  commit  %s\n  go      %s\n  wazero  %s\n", v.Module, commit, v.Go, v.Wazero)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of wasmesh, its commit, Go and wazero",
		Description: `Prints the module version ("dev" for a build from a checkout), the VCS
commit it was built from, the Go toolchain and the wazero runtime. A node
announces the same version to the cluster ('wasmesh nodes').

Examples:
   wasmesh version
   wasmesh --version
   wasmesh version --json`,
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fail(2, "version takes no arguments (see wasmesh version --help)")
			}
			v := readVersion()
			if c.Bool("json") {
				return printJSON(c.App.Writer, v)
			}
			fmt.Fprint(c.App.Writer, v)
			return nil
		},
	}
}
