package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/wasmesh/wasmesh/node"
)

// Re-exported so clients need only this package.
type (
	DrainProgress = node.DrainProgress
	DrainResult   = node.DrainResult
	DrainDaemon   = node.DrainDaemon
)

// CodeDraining is the code of a spawn or migration refused by a draining
// node.
const CodeDraining = node.CodeDraining

// DrainBody is the body of POST /v1/nodes/{name}/drain.
type DrainBody struct {
	To       []string `json:"to,omitempty"`
	Require  string   `json:"require,omitempty"`
	Parallel int      `json:"parallel,omitempty"`
}

// DrainLine is one line of the newline-delimited JSON stream that
// POST /v1/nodes/{name}/drain answers with: progress lines while daemons
// move, then one line with the summary (and the error when some did not).
type DrainLine struct {
	Progress *DrainProgress `json:"progress,omitempty"`
	Result   *DrainResult   `json:"result,omitempty"`
	Error    *Error         `json:"error,omitempty"`
}

// DrainBackend empties a node. *node.Node implements it; a Backend without
// it answers drain requests 501.
type DrainBackend interface {
	Drain(ctx context.Context, req node.DrainRequest, progress func(node.DrainProgress)) (node.DrainResult, error)
	Undrain(ctx context.Context, ref string) error
}

var _ DrainBackend = (*node.Node)(nil)

// drainRoutes serve the drain on the node being drained: a request naming
// another node is refused with where to send it (the CLI aims for you).
func (s *server) drainRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/nodes/{name}/drain", s.drain)
	route("POST /v1/nodes/{name}/undrain", s.undrain)
}

func (s *server) drainer(w http.ResponseWriter) (DrainBackend, bool) {
	db, ok := s.b.(DrainBackend)
	if !ok {
		writeErrorCode(w, http.StatusNotImplemented, CodeInternal, "this node cannot drain")
	}
	return db, ok
}

func (s *server) drain(w http.ResponseWriter, r *http.Request) {
	db, ok := s.drainer(w)
	if !ok {
		return
	}
	var body DrainBody
	if err := s.decode(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	if len(body.To) > 64 {
		writeError(w, fmt.Errorf("%w: %d \"to\" nodes, at most 64", node.ErrBadRequest, len(body.To)))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	emit := func(l DrainLine) {
		_ = enc.Encode(l)
		if flusher != nil {
			flusher.Flush()
		}
	}
	req := node.DrainRequest{Node: r.PathValue("name"), To: body.To, Require: body.Require, Parallel: body.Parallel}
	res, err := db.Drain(r.Context(), req, func(p node.DrainProgress) { emit(DrainLine{Progress: &p}) })
	if err != nil {
		_, code := classify(err)
		emit(DrainLine{Error: &Error{Message: err.Error(), Code: code}, Result: &res})
		return
	}
	emit(DrainLine{Result: &res})
}

func (s *server) undrain(w http.ResponseWriter, r *http.Request) {
	db, ok := s.drainer(w)
	if !ok {
		return
	}
	if err := db.Undrain(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, map[string]string{"node": r.PathValue("name"), "state": "alive"})
}

// Drain empties node (the one this client talks to: see the drain
// routes); progress (may be nil) sees each daemon's outcome. A drain that
// left daemons behind returns its summary and an error.
func (c *Client) Drain(ctx context.Context, name string, body DrainBody, progress func(DrainProgress)) (DrainResult, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return DrainResult{}, err
	}
	return progressStream[DrainProgress, DrainResult](ctx, c, "/v1/nodes/"+ref(name)+"/drain", b, "drain", progress)
}

// Undrain lets spawns and migrations back onto node.
func (c *Client) Undrain(ctx context.Context, name string) error {
	return c.json(ctx, http.MethodPost, "/v1/nodes/"+ref(name)+"/undrain", nil, nil)
}
