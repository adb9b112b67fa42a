package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/store"
)

// ExpectRequest prepares a node to receive a daemon by migration (SPEC
// R-M6): with Key the node registers the daemon's identity, so a
// `migrate --no-identity` (no key shipped) can land there; without it the
// node expects the daemon with its key sealed in the migration.
type ExpectRequest struct {
	// Daemon is an id or name; with Key it may be empty (the key names it).
	Daemon string `json:"daemon,omitempty" msgpack:"d"`
	// Kind is a kind name or digest; default the daemon's module.
	Kind string `json:"kind,omitempty" msgpack:"k"`
	// Key is an identity key file (identity.Save format).
	Key []byte `json:"key,omitempty" msgpack:"y"`
	// On is the node to prepare (name or id); "" for this node.
	On string `json:"on,omitempty" msgpack:"-"`
}

// ExpectResult says what the prepared node now accepts.
type ExpectResult struct {
	Daemon string `json:"daemon"`
	Node   string `json:"node"`
	Digest string `json:"digest"`
	// Identity: the node holds the daemon's key, so --no-identity works.
	Identity bool `json:"identity"`
}

// Expect prepares req.On (default this node) for a migration of a daemon.
func (n *Node) Expect(ctx context.Context, req ExpectRequest) (ExpectResult, error) {
	if req.On != "" {
		target, err := n.resolveNode(req.On)
		if err != nil {
			return ExpectResult{}, err
		}
		if target != n.id {
			if req.Key != nil {
				return ExpectResult{}, fmt.Errorf("%w: a daemon key is given only to the node that keeps it: run this against %s", ErrBadRequest, aimHint(n.nodeInfoOf(target)))
			}
			p := peerRef{id: target, name: n.peerName(target)}
			var res ExpectResult
			if err := n.ep.Call(ctx, p.peer(), subExpect, req, &res); err != nil {
				return ExpectResult{}, fromRemote(err, p.String())
			}
			return res, nil
		}
	}
	return n.expectLocal(ctx, req)
}

func (n *Node) expectLocal(ctx context.Context, req ExpectRequest) (ExpectResult, error) {
	var (
		origin uint64
		id     identity.Identity
		digest string
		err    error
	)
	if req.Key != nil {
		if id, err = identity.Parse(req.Key); err != nil {
			return ExpectResult{}, fmt.Errorf("%w: daemon key: %w", ErrBadRequest, err)
		}
		origin = id.Origin()
	}
	if req.Daemon != "" {
		info, err := n.Daemon(ctx, req.Daemon)
		if err != nil && req.Key == nil {
			return ExpectResult{}, err
		}
		if err == nil {
			o, perr := abi.ParseOrigin(info.ID)
			if perr != nil {
				return ExpectResult{}, perr
			}
			if req.Key != nil && o != origin {
				return ExpectResult{}, fmt.Errorf("%w: the key is of daemon %s, not of %s (%s)", ErrBadRequest, abi.FormatOrigin(origin), req.Daemon, info.ID)
			}
			origin, digest = o, info.Digest
		}
	}
	if req.Daemon == "" && req.Key == nil {
		return ExpectResult{}, fmt.Errorf("%w: name the DAEMON or give its --key", ErrBadRequest)
	}
	if req.Kind != "" {
		dg, err := n.ResolveKind(ctx, req.Kind)
		if err != nil {
			return ExpectResult{}, err
		}
		if digest != "" && dg != digest {
			return ExpectResult{}, fmt.Errorf("%w: daemon %s runs module %s, kind %s is %s", ErrBadRequest, abi.FormatOrigin(origin), digest, abi.Echo(req.Kind), dg)
		}
		digest = dg
	}
	if digest == "" {
		return ExpectResult{}, fmt.Errorf("%w: daemon %s is not running anywhere; give its --kind", ErrBadRequest, abi.FormatOrigin(origin))
	}
	// The module must be here when the migration asks; fetching it now
	// also proves the digest is a module the cluster knows.
	if _, _, err := n.kindForSpawn(ctx, digest, nil); err != nil {
		return ExpectResult{}, err
	}
	if id.IsZero() {
		// A key this node already keeps (a record of the daemon) counts.
		if rec, err := n.store.Get(origin); err == nil {
			if id, err = identity.FromSeed(rec.Seed); err != nil {
				return ExpectResult{}, err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return ExpectResult{}, err
		}
	}
	res := ExpectResult{Daemon: abi.FormatOrigin(origin), Node: n.name, Digest: digest}
	if id.IsZero() {
		n.mig.ExpectMigration(digest, origin)
	} else {
		n.mig.RegisterMigrationTargetIdentity(digest, id)
		res.Identity = true
	}
	n.log.Info("migration expected", "daemon", res.Daemon, "digest", digest, "identity", res.Identity)
	return res, nil
}
