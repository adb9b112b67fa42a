package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/wasmesh/wasmesh/node"
)

// DefaultMaxUploads is how many module and snapshot uploads a node buffers
// at once. Each is held whole in memory (up to MaxBody) while it is
// validated, so the cap is what bounds their total: 2 × 256 MiB, not one
// MaxBody per concurrent client.
const DefaultMaxUploads = 2

// ForceBackend is the part of the API that overrides a safety refusal:
// re-pointing a kind name, rolling a daemon back to an older snapshot.
// *node.Node implements it; a Backend without it refuses force=1 (501).
type ForceBackend interface {
	DeployForce(ctx context.Context, module []byte, kind string, force bool) (node.KindInfo, error)
	RestoreForce(ctx context.Context, data []byte, kind, on string, force bool) (node.DaemonInfo, error)
}

var _ ForceBackend = (*node.Node)(nil)

// acquireUpload takes an upload slot without waiting: a node that is busy
// buffering uploads says so at once (503, retry) instead of queueing more
// bodies in memory. The returned release must be called once.
func (s *server) acquireUpload() (release func(), err error) {
	select {
	case s.uploads <- struct{}{}:
		return func() { <-s.uploads }, nil
	default:
		return nil, fmt.Errorf("%w: busy: %d module/snapshot uploads already in progress on this node; retry shortly", node.ErrUnavailable, cap(s.uploads))
	}
}

func forceParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, nil
	}
	f, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: force=%s: want true or false", node.ErrBadRequest, strconv.QuoteToGraphic(v))
	}
	return f, nil
}

func (s *server) deployForce(ctx context.Context, mod []byte, kind string, force bool) (node.KindInfo, error) {
	if fb, ok := s.b.(ForceBackend); ok {
		return fb.DeployForce(ctx, mod, kind, force)
	}
	if force {
		return node.KindInfo{}, fmt.Errorf("%w: this node cannot force a deploy", node.ErrBadRequest)
	}
	return s.b.Deploy(ctx, mod, kind)
}

func (s *server) restoreForce(ctx context.Context, data []byte, kind, on string, force bool) (node.DaemonInfo, error) {
	if fb, ok := s.b.(ForceBackend); ok {
		return fb.RestoreForce(ctx, data, kind, on, force)
	}
	if force {
		return node.DaemonInfo{}, fmt.Errorf("%w: this node cannot force a restore", node.ErrBadRequest)
	}
	return s.restoreOn(ctx, data, kind, on)
}

// DeployForce uploads a module; force re-points a kind name that already
// names another module (Deploy refuses that).
func (c *Client) DeployForce(ctx context.Context, r io.Reader, kind string, force bool) (KindInfo, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	if force {
		q.Set("force", "true")
	}
	path := "/v1/modules"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out KindInfo
	resp, err := c.do(ctx, http.MethodPost, path, r, "application/wasm")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("bad response from %s: %w", c.Base, err)
	}
	return out, nil
}

// RestoreForce is RestoreOn; force lets an older snapshot roll a running
// daemon back (RestoreOn refuses that).
func (c *Client) RestoreForce(ctx context.Context, data []byte, kind, on string, force bool) (DaemonInfo, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	if on != "" {
		q.Set("on", on)
	}
	if force {
		q.Set("force", "true")
	}
	path := "/v1/restore"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out DaemonInfo
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(data), "application/octet-stream")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("bad response from %s: %w", c.Base, err)
	}
	return out, nil
}
