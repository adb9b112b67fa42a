package meshquic

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// relayCoded is a handler's own classification of a failure whose cause
// is a third node's error.
type relayCoded struct{ err error }

func (e relayCoded) Error() string  { return "unknown kind: " + e.err.Error() }
func (e relayCoded) Unwrap() error  { return e.err }
func (relayCoded) WireCode() string { return "unknown_kind" }

// TestWireCodeOfARelayedCause: a handler that classified its failure keeps
// its code even when the cause is another peer's error; an unclassified
// relay keeps the other peer's code and message; the caller's message says
// the peer's message, not the code again.
func TestWireCodeOfARelayedCause(t *testing.T) {
	third := &RemoteError{Peer: NodeID{3}, Code: CodeNotFound, Message: "meshquic: not found: module x"}
	w := toWire(relayCoded{err: fmt.Errorf("fetch: %w", third)})
	if w.Code != "unknown_kind" || !strings.HasPrefix(w.Message, "unknown kind: fetch: ") {
		t.Fatalf("classified relay sent as %+v", w)
	}
	if w := toWire(fmt.Errorf("relaying: %w", third)); w.Code != CodeNotFound || w.Message != third.Message {
		t.Fatalf("plain relay sent as %+v", w)
	}
	err := fromWire(NodeID{2}, wireError{Code: CodeNotFound, Message: "meshquic: not found: module x"})
	if !errors.Is(err, ErrNotFound) || strings.Count(err.Error(), "not found") != 1 {
		t.Fatalf("caller's error %q", err)
	}
}
