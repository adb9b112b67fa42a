package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// clusterSecretFile is what `cluster init` names the gossip secret.
const clusterSecretFile = "cluster.secret"

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "create cluster credentials: a CA for node certificates and a gossip secret",
		Description: `A production cluster needs two credentials, both made here once:
  - a cluster CA: every node proves membership with a certificate the CA
    signed (mutual TLS on the QUIC mesh; anyone else is refused before any
    message is read);
  - a gossip secret that encrypts membership traffic.

Keep DIR/ca.key offline if you can: issue each node's certificate with
'wasmesh cluster issue' and copy only that node's data dir to it.

Examples:
   wasmesh cluster init /secure/wasmesh-ca
   wasmesh cluster issue --ca /secure/wasmesh-ca --data /var/lib/wasmesh/n1
   wasmesh node --data /var/lib/wasmesh/n1 --cluster-secret-file /secure/wasmesh-ca/cluster.secret`,
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create a cluster CA (ca.crt, ca.key) and a gossip secret (cluster.secret) in DIR",
				ArgsUsage: "DIR",
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "exactly one DIR"); err != nil {
						return err
					}
					dir := c.Args().First()
					if err := os.MkdirAll(dir, 0o700); err != nil {
						return fail(1, "%v", err)
					}
					secretPath := filepath.Join(dir, clusterSecretFile)
					if _, err := os.Stat(secretPath); err == nil {
						return fail(2, "%s already exists: a cluster is initialised there (delete it deliberately to start over)", secretPath)
					}
					ca, err := nodekey.NewClusterCA()
					if err != nil {
						return fail(1, "%v", err)
					}
					if err := ca.Save(dir); err != nil {
						return fail(2, "%v", err)
					}
					secret := make([]byte, 32)
					if _, err := rand.Read(secret); err != nil {
						return fail(1, "%v", err)
					}
					if err := os.WriteFile(secretPath, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
						return fail(1, "%v", err)
					}
					fmt.Fprintf(c.App.Writer, "created %s, %s and %s\n", filepath.Join(dir, nodekey.CACertFile), filepath.Join(dir, nodekey.CAKeyFile), secretPath)
					fmt.Fprintf(c.App.Writer, "next: wasmesh cluster issue --ca %s --data NODE_DATA_DIR (for every node)\n", dir)
					return nil
				},
			},
			{
				Name:  "issue",
				Usage: "create a node's key in its data dir and a certificate for it signed by the cluster CA",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "ca", Usage: "`DIR` made by 'wasmesh cluster init'", Required: true},
					&cli.StringFlag{Name: "data", Usage: "the node's data `DIR` (created if missing)", Required: true},
				},
				Action: func(c *cli.Context) error {
					ca, err := nodekey.LoadClusterCA(c.String("ca"))
					if err != nil {
						return fail(2, "--ca: %v", err)
					}
					dir := c.String("data")
					if err := os.MkdirAll(dir, 0o700); err != nil {
						return fail(1, "%v", err)
					}
					key, err := nodekey.LoadOrCreateNodeKey(dir)
					if err != nil {
						return fail(2, "--data: %v", err)
					}
					creds, err := ca.NodeCredentials(key)
					if err != nil {
						return fail(1, "%v", err)
					}
					if err := creds.SaveNodeCert(dir); err != nil {
						return fail(1, "%v", err)
					}
					fmt.Fprintf(c.App.Writer, "node %s: wrote %s and %s\n", key.ID(), filepath.Join(dir, nodekey.NodeCertFile), filepath.Join(dir, nodekey.CACertFile))
					return nil
				},
			},
		},
	}
}
