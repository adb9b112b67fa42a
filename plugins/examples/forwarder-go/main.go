// Command forwarder-go is a counter that forwards every tenth count to a
// peer daemon with wasmesh.Send.
//
//   - "peer <16 hex digits>" sets the peer's origin (as `wasmesh ls` shows
//     it); it emits nothing and is not counted.
//   - "get" emits the count unchanged.
//   - Any other event adds one to the count and emits it in decimal; when
//     the new count is a multiple of ten it also sends "fwd <count>" to the
//     peer.
//
// A forward the host does not queue fails the event with a message naming
// the send code, and so does a tenth event without a peer: the count only
// moves once the message is queued, so nothing is lost silently (the host
// rolls a failed event back anyway; this keeps the count right without it).
package main

import (
	"errors"
	"strconv"

	wasmesh "github.com/wasmesh/wasmesh/sdk-guest/go"
)

var (
	count uint64
	// peer is 0 until set: origin 0 is the anonymous client, never a daemon.
	peer uint64
)

func init() { wasmesh.Handle(handle) }

func handle(ev wasmesh.Event) ([][]byte, error) {
	p := string(ev.Payload)
	switch {
	case p == "get":
		return [][]byte{strconv.AppendUint(nil, count, 10)}, nil
	case p == "peer" || len(p) >= 5 && p[:5] == "peer ":
		o, err := parsePeer(p)
		if err != nil {
			return nil, err
		}
		peer = o
		return nil, nil
	}
	next := count + 1
	if next%10 == 0 {
		if peer == 0 {
			return nil, &fwdError{n: next, err: errNoPeer}
		}
		if err := wasmesh.Send(peer, strconv.AppendUint([]byte("fwd "), next, 10)); err != nil {
			return nil, &fwdError{n: next, err: err}
		}
	}
	count = next
	return [][]byte{strconv.AppendUint(nil, count, 10)}, nil
}

// parsePeer reads "peer " and exactly 16 hex digits, the origin's value
// written most significant digit first.
func parsePeer(p string) (uint64, error) {
	const usage = "usage: peer <16 hex digits, not all zero>"
	if len(p) != 5+16 {
		return 0, errors.New(usage)
	}
	var o uint64
	for _, c := range []byte(p[5:]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, errors.New(usage)
		}
		o = o<<4 | uint64(d)
	}
	if o == 0 {
		return 0, errors.New(usage)
	}
	return o, nil
}

// errNoPeer: a tenth event came before any "peer" event.
var errNoPeer = errors.New(`no peer (send "peer <16 hex digits>" first)`)

// fwdError is a forward that was not queued. It is built without fmt, which
// would add a few hundred KB to the module.
type fwdError struct {
	n   uint64
	err error
}

func (e *fwdError) Error() string {
	s := "fwd " + strconv.FormatUint(e.n, 10) + " not sent: "
	if e.err == errNoPeer {
		return s + e.err.Error()
	}
	return s + "send code " + sendCode(e.err) + ": " + e.err.Error()
}

func (e *fwdError) Unwrap() error { return e.err }

// sendCode recovers the host's result code, which the SDK turns into an
// error, so the message names the code as the other languages' do.
func sendCode(err error) string {
	switch {
	case errors.Is(err, wasmesh.ErrSendTooLarge):
		return "1 (too large)"
	case errors.Is(err, wasmesh.ErrOutboxFull):
		return "2 (outbox full)"
	}
	return "unknown"
}

func main() {}
