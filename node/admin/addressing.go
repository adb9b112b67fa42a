package admin

import (
	"context"
	"fmt"
	"net/http"

	"github.com/wasmesh/wasmesh/node"
)

// AddressingBackend is the part of the API that aims at the right node:
// restore on a chosen node, and preparing a migration target. *node.Node
// implements it; a Backend without it answers those requests 501.
type AddressingBackend interface {
	RestoreOn(ctx context.Context, data []byte, kind, on string) (node.DaemonInfo, error)
	Expect(ctx context.Context, req node.ExpectRequest) (node.ExpectResult, error)
}

var _ AddressingBackend = (*node.Node)(nil)

func (s *server) addressingRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/expect", s.expect)
}

func (s *server) addressing() (AddressingBackend, bool) {
	ab, ok := s.b.(AddressingBackend)
	return ab, ok
}

func (s *server) restoreOn(ctx context.Context, data []byte, kind, on string) (node.DaemonInfo, error) {
	if ab, ok := s.addressing(); ok {
		return ab.RestoreOn(ctx, data, kind, on)
	}
	if on != "" {
		return node.DaemonInfo{}, fmt.Errorf("%w: this node cannot restore on another node", node.ErrBadRequest)
	}
	return s.b.Restore(ctx, data, kind)
}

func (s *server) expect(w http.ResponseWriter, r *http.Request) {
	ab, ok := s.addressing()
	if !ok {
		writeErrorCode(w, http.StatusNotImplemented, CodeInternal, "this node cannot prepare migration targets")
		return
	}
	var req ExpectRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	res, err := ab.Expect(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, res)
}

// RestoreOn continues a daemon from snapshot bytes on node on ("" lets the
// node find the one that holds the daemon's key).
func (c *Client) RestoreOn(ctx context.Context, data []byte, kind, on string) (DaemonInfo, error) {
	return c.RestoreForce(ctx, data, kind, on, false)
}

// Expect prepares a node to receive a daemon by migration.
func (c *Client) Expect(ctx context.Context, req ExpectRequest) (ExpectResult, error) {
	var out ExpectResult
	err := c.json(ctx, http.MethodPost, "/v1/expect", req, &out)
	return out, err
}
