// Command wasmesh is the operator's tool: it inspects and runs wasm daemons
// locally, and (with a node) deploys, sends to, snapshots and migrates them.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/node/admin"
)

// exitError carries an exit status through urfave/cli without printing twice.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "wasmesh",
		Usage:     "run stateful WebAssembly daemons on a mesh and move them live between nodes",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Description: `wasmesh runs daemons: WebAssembly modules that process events one at a
time and emit outputs. Every daemon has its own ed25519 identity; its outputs
form a verifiable hash chain, and its state can be snapshotted and restored.

Start here:
   wasmesh demo
   wasmesh inspect plugins/examples/counter-wat/counter-wat.wasm
   printf 'a\nb\nget\n' | wasmesh run plugins/examples/counter-wat/counter-wat.wasm`,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		// Our own --version (urfave's printer is a package variable).
		Flags:  []cli.Flag{&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version and exit"}},
		Action: appAction,
		Commands: []*cli.Command{
			inspectCommand(),
			runCommand(),
			nodeCommand(),
			deployCommand(),
			spawnCommand(),
			sendCommand(),
			psCommand(),
			nodesCommand(),
			statsCommand(),
			stopCommand(),
			migrateCommand(),
			expectCommand(),
			clusterCommand(),
			snapshotCommand(),
			restoreCommand(),
			logsCommand(),
			demoCommand(),
			tokenCommand(),
			channelCommand(),
			publishCommand(),
			subscribeCommand(),
			unsubscribeCommand(),
			subscriptionsCommand(),
			versionCommand(),
			completionCommand(),
			manCommand(),
			newCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
	}
	for _, c := range app.Commands {
		c.OnUsageError = usageError
	}
	return app
}

// appAction runs when no verb matched: --version, a typo'd verb (one line
// with the closest verb, exit 2), or no verb at all (the help).
func appAction(c *cli.Context) error {
	if c.Bool("version") {
		fmt.Fprint(c.App.Writer, readVersion())
		return nil
	}
	if c.NArg() == 0 {
		return cli.ShowAppHelp(c)
	}
	verb := c.Args().First()
	msg := fmt.Sprintf("unknown command %q", verb)
	if s := closestVerb(c.App.Commands, verb); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += " (see wasmesh --help)"
	}
	return &exitError{code: 2, err: errors.New(msg)}
}

// usageError makes a bad flag a one-line error (exit 2) instead of the
// whole help text; --help still prints it.
func usageError(_ *cli.Context, err error, _ bool) error {
	return &exitError{code: 2, err: fmt.Errorf("%v (see --help)", err)}
}

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and maps errors to exit statuses: 1 for a failure
// of the work, 2 for bad usage or refused input; a node's answer gets the
// status of its class in the node's error table (node.ErrorClasses).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.Run(interspersed(app, args))
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "wasmesh: %s\n", termSafe(ee.err.Error(), true))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "wasmesh: %s\n", termSafe(err.Error(), true))
	var ae *admin.APIError
	if errors.As(err, &ae) {
		// A node's answer: the exit status of its class in the node's
		// error table, as apiFail gives it.
		return ae.ExitCode()
	}
	return 2
}
