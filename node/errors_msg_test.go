package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// TestMessagesSayTheReasonOnce: a lower layer's error put in its node
// class keeps both sentinels and says the reason once.
func TestMessagesSayTheReasonOnce(t *testing.T) {
	f, err := cluster.ParseFilter("gpu")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		err      error
		sentinel error
		cause    error
		want     string
	}{
		{wrap(ErrUnknownKind, fmt.Errorf("%w: %q (deploy it first)", engine.ErrUnknownKind, "k")), ErrUnknownKind, engine.ErrUnknownKind,
			`node: unknown kind: "k" (deploy it first)`},
		{wrap(ErrRefused, &abi.RefusalError{Problems: []abi.Problem{{Item: "import env.x", Reason: "not allowed"}}}), ErrRefused, abi.ErrRefused,
			"node: module refused: import env.x: not allowed"},
		{wrap(ErrNameTaken, fmt.Errorf("%w: %q is daemon 1", store.ErrNameTaken, "c")), ErrNameTaken, store.ErrNameTaken,
			`node: name already used on this node: "c" is daemon 1`},
		{wrap(ErrShuttingDown, engine.ErrShuttingDown), ErrShuttingDown, engine.ErrShuttingDown, "node: shutting down"},
		{wrap(ErrBadRequest, errors.New("no")), ErrBadRequest, nil, "node: bad request: no"},
		{noMatch("gpu", &cluster.NoMatchError{Filter: f, Candidates: 3, Failed: map[string]int{"gpu": 3, cluster.ReqNotSource: 1}}), ErrNoMatch, cluster.ErrNoMatchingNode,
			`node: no node matches the filter "gpu": "gpu" unmet on 3, "not the source node" unmet on 1 (of 3 candidate(s))`},
		{noMatch("", &cluster.NoMatchError{}), ErrNoMatch, cluster.ErrNoMatchingNode, `node: no node matches the filter "*": no candidate nodes`},
		{fromRemote(fmt.Errorf("%w (next attempt in 1s): dial: refused", meshquic.ErrPeerUnavailable), "b"), ErrUnavailable, meshquic.ErrPeerUnavailable,
			"node: peer unavailable: node b: (next attempt in 1s): dial: refused"},
	} {
		if tc.err.Error() != tc.want {
			t.Errorf("message %q, want %q", tc.err.Error(), tc.want)
		}
		if c := ClassOf(tc.err); c.Sentinel != tc.sentinel {
			t.Errorf("%q in class %q", tc.err, c.Code)
		}
		if !errors.Is(tc.err, tc.sentinel) || (tc.cause != nil && !errors.Is(tc.err, tc.cause)) {
			t.Errorf("%q does not match %v and %v", tc.err, tc.sentinel, tc.cause)
		}
	}
	// The class a caller chose wins over a lower layer's sentinel inside.
	tooBig := wrap(ErrUnknownKind, fmt.Errorf("fetch: %w", meshquic.ErrModuleTooLarge))
	if c := ClassOf(tooBig); c.Sentinel != ErrUnknownKind {
		t.Errorf("%q in class %q", tooBig, c.Code)
	}
	if c := ClassOf(fmt.Errorf("fetch: %w", meshquic.ErrModuleTooLarge)); c.Sentinel != ErrTooLarge {
		t.Errorf("a bare transport error in class %q", c.Code)
	}
}
