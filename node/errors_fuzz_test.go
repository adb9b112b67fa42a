package node

import (
	"errors"
	"strings"
	"testing"

	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// FuzzFromRemote: whatever code and message a peer sends, the error it
// becomes is in the class of that code (internal, and ErrRemote, when the
// code is unknown), keeps the message, and names the failing node once.
func FuzzFromRemote(f *testing.F) {
	for _, c := range ErrorClasses() {
		f.Add(c.Code, "node: something: why")
	}
	f.Add("not_hosted", "x (on node b)")
	f.Add("", "")
	f.Add("\xff", strings.Repeat("m", 300))
	f.Fuzz(func(t *testing.T, code, msg string) {
		err := fromRemote(&meshquic.RemoteError{Code: code, Message: msg}, "peer-x")
		c, known := ClassByCode(code)
		got := ClassOf(err)
		switch {
		case known && c.Sentinel != nil:
			if !errors.Is(err, c.Sentinel) || got.Code != c.Code {
				t.Fatalf("code %q: error %v in class %q", code, err, got.Code)
			}
		default:
			if !errors.Is(err, meshquic.ErrRemote) {
				t.Fatalf("code %q: %v does not match ErrRemote", code, err)
			}
		}
		want := msg + " (on node peer-x)"
		if strings.Contains(msg, "(on node ") {
			want = msg // relayed: names the node that failed already
		}
		if err.Error() != want {
			t.Fatalf("message %q became %q", msg, err.Error())
		}
	})
}
