package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/wasmesh/wasmesh/abi"
	"io"
	"os"
	"os/signal"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/payload"
	"github.com/wasmesh/wasmesh/internal/snapshot"
	"github.com/wasmesh/wasmesh/internal/units"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run one daemon locally, one event per input line",
		ArgsUsage: "MODULE.wasm",
		Description: `Runs a single daemon in an embedded runtime. Each line of standard input
(or of --input FILE) is one event; each output the daemon emits is printed on
its own line, in order. A failing event prints "error: event N: ..." on stderr
and processing continues; the exit status is 1 if any event failed, 2 if the
module or a flag was refused before any input was read.

Examples:
   printf 'hello\n' | wasmesh run echo.wasm
   wasmesh run counter.wasm --input events.txt --snapshot-out counter.snap --identity counter.key
   wasmesh run counter.wasm --restore counter.snap --identity counter.key < more.txt
   wasmesh run echo.wasm --input-format hex --output-format base64 <<< 00ff10`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read events from `FILE` instead of stdin"},
			&cli.StringFlag{Name: "input-format", Value: "text", Usage: "how input lines encode payloads: text, hex or base64"},
			&cli.StringFlag{Name: "output-format", Value: "text", Usage: "how outputs are printed: text, hex or base64"},
			&cli.StringFlag{Name: "identity", Usage: "ed25519 key `FILE` of the daemon; created (mode 0600) if missing; a fresh key when not given"},
			&cli.StringFlag{Name: "snapshot-out", Usage: "write a signed snapshot to `FILE` after the last event"},
			&cli.StringFlag{Name: "restore", Usage: "start from the snapshot in `FILE` instead of a fresh daemon (needs the same --identity)"},
			&cli.StringFlag{Name: "config", Usage: "bytes passed to wasmesh_init at spawn"},
			&cli.StringFlag{Name: "max-memory", Value: units.FormatSize(engine.DefaultMaxMemoryBytes), Usage: "linear memory cap, e.g. 1MiB, 64KiB or bytes"},
			&cli.DurationFlag{Name: "event-timeout", Value: engine.DefaultEventTimeout, Usage: "CPU budget per event, e.g. 200ms"},
			&cli.BoolFlag{Name: "quiet-logs", Usage: "do not copy the guest's log lines to stderr"},
		},
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fail(2, "run needs exactly one MODULE.wasm (see wasmesh run --help)")
	}
	inFmt, err := payload.ParseFormat(c.String("input-format"))
	if err != nil {
		return fail(2, "--input-format: %v", err)
	}
	outFmt, err := payload.ParseFormat(c.String("output-format"))
	if err != nil {
		return fail(2, "--output-format: %v", err)
	}
	maxMem, err := units.ParseSize(c.String("max-memory"))
	if err != nil {
		return fail(2, "--max-memory: %v", err)
	}
	if maxMem < 65536 {
		return fail(2, "--max-memory: %s is less than one 64 KiB wasm page", c.String("max-memory"))
	}
	if c.Duration("event-timeout") <= 0 {
		return fail(2, "--event-timeout must be positive, got %s", c.Duration("event-timeout"))
	}
	modPath := c.Args().First()
	module, err := os.ReadFile(modPath)
	if err != nil {
		return fail(2, "read module: %v", err)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	rt, err := engine.New(ctx, engine.Config{})
	if err != nil {
		return fail(1, "%v", err)
	}
	defer rt.Close(context.Background())
	kind, err := rt.RegisterModule(ctx, module, "")
	if err != nil {
		return fail(2, "%s: %v", modPath, err)
	}
	if err := rt.Start(ctx); err != nil {
		return fail(1, "%v", err)
	}

	id, err := runIdentity(c)
	if err != nil {
		return err
	}
	opts := engine.SpawnOptions{
		Config: []byte(c.String("config")),
		Limits: engine.Limits{MaxMemoryBytes: maxMem, EventTimeout: c.Duration("event-timeout")},
	}
	var d *engine.Daemon
	if path := c.String("restore"); path != "" {
		snap, err := snapshot.ReadFile(path, snapshot.DefaultLimits())
		if err != nil {
			return fail(2, "--restore %s: %v", path, err)
		}
		if got, want := engine.DigestFromBytes(snap.ModuleDigest), kind.Digest; got != want {
			return fail(2, "--restore %s: snapshot is of module %s, but %s is %s", path, got, modPath, want)
		}
		if idEnt := id.EntityID(); snap.EntityID != idEnt {
			hint := "pass the --identity FILE the daemon ran with"
			if c.String("identity") != "" {
				hint = "this --identity is not the daemon's key"
			}
			return fail(2, "--restore %s: snapshot belongs to entity %x…, not %x… (%s)", path, snap.EntityID[:6], idEnt[:6], hint)
		}
		d, err = rt.SpawnFromSnapshot(ctx, string(kind.Digest), id, snap, opts)
		if err != nil {
			return fail(1, "restore: %v", err)
		}
	} else {
		d, err = rt.Spawn(ctx, string(kind.Digest), id, opts)
		if err != nil {
			return fail(1, "spawn: %v", err)
		}
	}

	in := c.App.Reader
	if path := c.String("input"); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fail(2, "--input: %v", err)
		}
		defer f.Close()
		in = f
	}
	failed, err := feed(ctx, d, in, c.App.Writer, c.App.ErrWriter, inFmt, outFmt, !c.Bool("quiet-logs"))
	if err != nil {
		return fail(1, "%v", err)
	}
	if path := c.String("snapshot-out"); path != "" {
		data, err := d.EncodeSnapshot(ctx)
		if err != nil {
			return fail(1, "snapshot: %v", err)
		}
		if err := snapshot.WriteFile(path, data); err != nil {
			return fail(1, "snapshot: %v", err)
		}
	}
	if failed > 0 {
		return fail(1, "%d event(s) failed", failed)
	}
	return nil
}

func runIdentity(c *cli.Context) (identity.Identity, error) {
	path := c.String("identity")
	if path == "" {
		id, err := identity.Generate()
		if err != nil {
			return id, fail(1, "%v", err)
		}
		return id, nil
	}
	id, created, err := identity.LoadOrCreate(path)
	if err != nil {
		return id, fail(2, "--identity: %v", err)
	}
	if created {
		fmt.Fprintf(c.App.ErrWriter, "created identity %s (daemon %s)\n", path, formatOrigin(id.Origin()))
	}
	return id, nil
}

// feed delivers one event per line and prints outputs; it returns how many
// events failed. Only I/O errors stop it.
func feed(ctx context.Context, d *engine.Daemon, in io.Reader, out, errw io.Writer, inFmt, outFmt payload.Format, logs bool) (int, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), d.Limits().MaxInputBytes*2+16)
	w := bufio.NewWriter(out)
	defer w.Flush()
	var outs engine.Outputs
	var logNext uint64
	failed := 0
	for n := uint64(1); sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return failed, errors.New("interrupted")
		}
		data, err := inFmt.Decode(sc.Text())
		if err == nil {
			err = d.DeliverInto(ctx, engine.Event{Sender: 0, Seq: n, Payload: data}, &outs)
		}
		if logs {
			var lines []engine.LogLine
			lines, logNext = d.LogsAfter(logNext)
			if len(lines) > 0 {
				w.Flush()
				for _, l := range lines {
					fmt.Fprintf(errw, "log: [%s] %s\n", abi.LogLevelName(l.Level), termSafe(l.Text, false))
				}
			}
		}
		if err != nil {
			w.Flush()
			fmt.Fprintf(errw, "error: event %d: %s\n", n, termSafe(err.Error(), false))
			failed++
			continue
		}
		for _, o := range outs.Items {
			w.WriteString(outFmt.Encode(o.Payload))
			w.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return failed, fmt.Errorf("reading input: %w", err)
	}
	return failed, nil
}

func formatOrigin(o uint64) string { return fmt.Sprintf("%016x", o) }
