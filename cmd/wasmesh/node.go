package main

import (
	"context"
	"errors"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/units"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:      "node",
		Usage:     "run a mesh node: hosts daemons, joins the cluster, serves the admin API",
		ArgsUsage: " ",
		Description: `Runs a node until SIGINT/SIGTERM. The data dir keeps the node key, deployed
modules, wazero's compilation cache and an embedded store of daemon records
(including each daemon's private key seed, file mode 0600) and their latest
checkpoints, plus the journal of acknowledged events (journal/). With
--durability sync (the default) an event's outputs go back only once the
event is in the journal on disk, so a node killed at any moment (kill -9,
power loss) comes back with every acknowledged event; --durability interval
acknowledges at once and loses up to one --checkpoint-interval on a crash.
Daemons are checkpointed every --checkpoint-interval and on a clean
shutdown; a node restarted on the same data dir brings them back with their
identities and state (last checkpoint + journal) and logs each one
("daemon recovered").

--listen is the QUIC mesh address (--advertise, if given, is the one peers
dial instead), --gossip the membership address, --join the gossip address of
any member. The admin API (--admin) stays on loopback unless
--admin-token-file is given. --dev uses an INSECURE built-in cluster credential
for local experiments; real clusters use --cluster-secret-file plus a
certificate issued by the cluster CA (--ca DIR, or node.crt/ca.crt in --data).
Port 0 picks a free port; the bound addresses are written to DATA/node.json.

Examples:
   wasmesh node --dev --data /tmp/n1 --listen 127.0.0.1:7402 --gossip 127.0.0.1:7946 --admin 127.0.0.1:7401
   wasmesh node --dev --data /tmp/n2 --listen 127.0.0.1:7412 --gossip 127.0.0.1:7956 --admin 127.0.0.1:7411 \
       --join 127.0.0.1:7946 --name n2 --tag zone=eu-1 --tag gpu`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data `DIR` (created if missing; required)"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7402", Usage: "QUIC mesh `HOST:PORT`"},
			&cli.StringFlag{Name: "advertise", Usage: "QUIC mesh `HOST:PORT` announced to peers, when they reach this node elsewhere than --listen (NAT, relay, fault proxy); default the bound --listen address"},
			&cli.StringFlag{Name: "gossip", Value: "127.0.0.1:7946", Usage: "membership gossip `HOST:PORT`"},
			&cli.StringFlag{Name: "admin", Value: "127.0.0.1:7401", Usage: "admin HTTP API `HOST:PORT` (loopback unless --admin-token-file)"},
			&cli.StringSliceFlag{Name: "join", Usage: "gossip `HOST:PORT` of a member to join (repeatable)"},
			&cli.StringFlag{Name: "name", Usage: "member `NAME` (default node-<id prefix>)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "capability `KEY[=VALUE]` to announce (repeatable)"},
			&cli.StringFlag{Name: "cluster-secret-file", Usage: "`FILE` with the cluster's gossip secret (at least 16 bytes)"},
			&cli.StringFlag{Name: "ca", Usage: "`DIR` with the cluster CA (ca.crt, ca.key) to issue this node's certificate"},
			&cli.BoolFlag{Name: "dev", Usage: "INSECURE built-in dev cluster credentials (local experiments only)"},
			&cli.StringFlag{Name: "admin-token-file", Usage: "`FILE` with a bearer token the admin API requires"},
			&cli.StringFlag{Name: "max-memory", Value: units.FormatSize(engine.DefaultMaxMemoryBytes), Usage: "linear memory cap of each daemon, e.g. 64MiB"},
			&cli.DurationFlag{Name: "event-timeout", Value: engine.DefaultEventTimeout, Usage: "CPU budget of each event, e.g. 200ms"},
			&cli.DurationFlag{Name: "checkpoint-interval", Value: node.DefaultCheckpointInterval, Usage: "how often changed daemons are checkpointed (negative: only at shutdown)"},
			&cli.StringFlag{Name: "durability", Value: string(node.DurabilitySync), Usage: "when an event is acknowledged: sync (once it is in the fsynced journal: a kill -9 loses nothing acknowledged) or interval (as soon as it ran: a crash loses up to one --checkpoint-interval)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		},
		Action: nodeAction,
		// A required --data would be checked before the subcommands run:
		// nodeConfig checks it instead.
		Subcommands: drainSubcommands(),
	}
}

func nodeLogger(c *cli.Context) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fail(2, "--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, fail(2, "--log-format must be text or json, got %q", c.String("log-format"))
}

func nodeConfig(c *cli.Context, log *slog.Logger) (node.Config, error) {
	if c.NArg() > 0 {
		return node.Config{}, fail(2, "node takes no arguments, got %q", c.Args().First())
	}
	if c.String("data") == "" {
		return node.Config{}, fail(2, "node needs --data DIR (see wasmesh node --help)")
	}
	tags, err := cluster.ParseCapabilities(c.StringSlice("tag")...)
	if err != nil {
		return node.Config{}, fail(2, "--tag: %v", err)
	}
	cfg := node.Config{
		DataDir: c.String("data"), Name: c.String("name"), ListenAddr: c.String("listen"), AdvertiseAddr: c.String("advertise"), GossipAddr: c.String("gossip"),
		Join: c.StringSlice("join"), Tags: tags, Dev: c.Bool("dev"), CADir: c.String("ca"),
		CheckpointInterval: c.Duration("checkpoint-interval"), Logger: log, Version: readVersion().nodeVersion(),
	}
	maxMem, err := units.ParseSize(c.String("max-memory"))
	if err != nil || maxMem < 65536 {
		return cfg, fail(2, "--max-memory: want a size of at least 64KiB, e.g. 64MiB (got %q)", c.String("max-memory"))
	}
	if c.Duration("event-timeout") <= 0 {
		return cfg, fail(2, "--event-timeout must be positive, got %s", c.Duration("event-timeout"))
	}
	cfg.Limits = engine.Limits{MaxMemoryBytes: maxMem, EventTimeout: c.Duration("event-timeout")}
	if cfg.CheckpointInterval == 0 {
		return cfg, fail(2, "--checkpoint-interval must not be 0 (negative disables periodic checkpoints)")
	}
	dur, err := node.ParseDurability(c.String("durability"))
	if err != nil {
		return cfg, fail(2, "--durability: want sync or interval (got %q)", c.String("durability"))
	}
	cfg.Durability = dur
	secretFile := c.String("cluster-secret-file")
	switch {
	case cfg.Dev && secretFile != "":
		return cfg, fail(2, "--dev and --cluster-secret-file are exclusive")
	case !cfg.Dev && secretFile == "":
		return cfg, fail(2, "give --cluster-secret-file FILE, or --dev for an insecure local cluster")
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return cfg, fail(2, "--cluster-secret-file: %v", err)
		}
		cfg.ClusterSecret = []byte(strings.TrimSpace(string(b)))
		if len(cfg.ClusterSecret) < 16 {
			return cfg, fail(2, "--cluster-secret-file: the secret must be at least 16 bytes")
		}
	}
	return cfg, nil
}

func nodeAction(c *cli.Context) error {
	log, err := nodeLogger(c)
	if err != nil {
		return err
	}
	cfg, err := nodeConfig(c, log)
	if err != nil {
		return err
	}
	token := ""
	if f := c.String("admin-token-file"); f != "" {
		if token, err = admin.ReadTokenFile(f); err != nil {
			return fail(2, "--admin-token-file: %v", err)
		}
	}
	if err := admin.CheckAddr(c.String("admin"), token != ""); err != nil {
		return fail(2, "--admin: %v", err)
	}
	// Bind the admin port first: a taken port must fail before the node
	// joins the cluster and recovers daemons.
	srv, err := admin.Listen(c.String("admin"))
	if err != nil {
		return fail(1, "--admin: %v", err)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(ctx, cfg)
	if err != nil {
		srv.Shutdown(context.Background())
		if errors.Is(err, node.ErrBadConfig) {
			return fail(2, "%v", err)
		}
		return fail(1, "%v", err)
	}
	srv.Serve(admin.Handler(n, admin.Options{Token: token, Metrics: n.Metrics().Registry, Logger: log}), log)
	if err := n.Ready(srv.URL()); err != nil {
		log.Warn("could not write node.json", "err", err)
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := n.Close(sctx); err != nil {
		return fail(1, "shutdown: %v", err)
	}
	log.Info("node stopped")
	return nil
}
