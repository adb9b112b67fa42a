package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// multiErr has the shape of hashicorp/go-multierror's error, which
// memberlist's Join returns.
type multiErr []error

func (m multiErr) Error() string {
	s := fmt.Sprintf("%d errors occurred:\n", len(m))
	for _, e := range m {
		s += "\t* " + e.Error() + "\n"
	}
	return s + "\n"
}
func (m multiErr) WrappedErrors() []error { return m }

func TestJoinReasonIsOneLine(t *testing.T) {
	inner := multiErr{errors.New("failed to join 10.0.0.1:7946: dial tcp 10.0.0.1:7946: i/o timeout"), errors.New("failed to join 10.0.0.2:7946: connection refused")}
	err := fmt.Errorf("cluster: join failed: via x: %w", inner)
	if got, want := joinReason(err), "dial tcp 10.0.0.1:7946: i/o timeout; connection refused"; got != want {
		t.Fatalf("joinReason = %q, want %q", got, want)
	}
	if got := joinReason(errors.New("a\n\tb\n")); got != "a b" || strings.Contains(got, "\n") {
		t.Fatalf("plain = %q", got)
	}
}
