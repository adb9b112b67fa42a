package meshquic

import (
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Local conditions; test with errors.Is. Errors a peer reports come back as
// *RemoteError, which also matches ErrRemote and the sentinel of its code
// (see Code* constants), so callers can treat local and remote conditions
// alike: errors.Is(err, ErrFrameTooLarge) is true for both sides' refusals.
var (
	// ErrPeerUnavailable: the peer could not be reached, its connection
	// broke, or a recent dial failed and the endpoint is backing off.
	ErrPeerUnavailable = errors.New("meshquic: peer unavailable")
	// ErrUnauthenticated: the TLS handshake refused the peer (or the peer
	// refused us) because one side could not prove cluster membership.
	ErrUnauthenticated = errors.New("meshquic: peer not authenticated as a cluster member")
	// ErrUnknownPeer: a call by node id for which no address is known.
	ErrUnknownPeer = errors.New("meshquic: no address for peer")
	// ErrTimeout: a deadline passed; also matches context.DeadlineExceeded
	// when that was the cause.
	ErrTimeout = errors.New("meshquic: timeout")
	// ErrClosed: the endpoint is closed.
	ErrClosed = errors.New("meshquic: endpoint closed")
	// ErrFrameTooLarge: a frame exceeds the configured maximum.
	ErrFrameTooLarge = errors.New("meshquic: frame too large")
	// ErrTruncatedFrame: the stream ended inside a frame.
	ErrTruncatedFrame = errors.New("meshquic: truncated frame")
	// ErrMalformed: a frame's content is not what the protocol allows.
	ErrMalformed = errors.New("meshquic: malformed message")
	// ErrUnknownSubprotocol: the peer has no handler for the subprotocol.
	ErrUnknownSubprotocol = errors.New("meshquic: unknown subprotocol")
	// ErrRemote matches every error reported by a peer.
	ErrRemote = errors.New("meshquic: remote error")
	// ErrNotFound: the peer does not have the thing asked for.
	ErrNotFound = errors.New("meshquic: not found")
	// ErrNotHosted: the daemon is not hosted by the node asked. LocalOps
	// returns it; the transport turns it into a MovedError if it knows
	// where the daemon went.
	ErrNotHosted = errors.New("meshquic: daemon not hosted here")
	// ErrMoved: the daemon moved; errors.As to *MovedError for where.
	ErrMoved = errors.New("meshquic: daemon moved")
	// ErrTooManyRedirects: moved answers kept coming.
	ErrTooManyRedirects = errors.New("meshquic: too many redirects")
	// ErrForbidden: the peer is authenticated but not allowed to do this.
	ErrForbidden = errors.New("meshquic: forbidden")
	// ErrDigestMismatch: fetched module bytes do not hash to the digest.
	ErrDigestMismatch = errors.New("meshquic: module digest mismatch")
	// ErrModuleTooLarge: a module exceeds the fetch size cap.
	ErrModuleTooLarge = errors.New("meshquic: module too large")
	// ErrBadDigest: a digest string is not sha256 hex.
	ErrBadDigest = errors.New("meshquic: bad digest")
)

// Wire error codes: the stable vocabulary peers use to report failures.
const (
	CodeInternal           = "internal"
	CodeUnknownSubprotocol = "unknown_subprotocol"
	CodeFrameTooLarge      = "frame_too_large"
	CodeMalformed          = "malformed"
	CodeNotFound           = "not_found"
	CodeNotHosted          = "not_hosted"
	CodeMoved              = "moved"
	CodeForbidden          = "forbidden"
	CodeTimeout            = "timeout"
	CodeUnavailable        = "unavailable"
	CodeModuleTooLarge     = "module_too_large"
)

// codeSentinels maps codes to sentinels in both directions. It is read-only
// after init (a composite literal, never written).
var codeSentinels = [...]struct {
	code string
	err  error
}{
	{CodeUnknownSubprotocol, ErrUnknownSubprotocol},
	{CodeFrameTooLarge, ErrFrameTooLarge},
	{CodeMalformed, ErrMalformed},
	{CodeNotFound, ErrNotFound},
	{CodeNotHosted, ErrNotHosted},
	{CodeMoved, ErrMoved},
	{CodeForbidden, ErrForbidden},
	{CodeTimeout, ErrTimeout},
	{CodeUnavailable, ErrPeerUnavailable},
	{CodeModuleTooLarge, ErrModuleTooLarge},
	{CodeOverloaded, ErrOverloaded},
}

// Coder lets errors from other packages (the host, migration) choose their
// wire code without this package knowing them; the caller's side gets a
// *RemoteError with that Code.
type Coder interface {
	WireCode() string
}

// RemoteError is a failure reported by a peer.
type RemoteError struct {
	Peer    nodekey.NodeID
	Code    string
	Message string
}

// Error is the peer's own message: it already says the reason (the code is
// for machines), so repeating the code would say it twice.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("meshquic: peer %s: %s", e.Peer, e.Message)
}

// Is matches ErrRemote and the sentinel of e's code.
func (e *RemoteError) Is(target error) bool {
	if target == ErrRemote {
		return true
	}
	for _, cs := range codeSentinels {
		if cs.code == e.Code {
			return target == cs.err
		}
	}
	return false
}

// MovedError says a daemon now lives elsewhere. A node answers it after a
// migration; Deliver helpers follow it and update their Routes.
type MovedError struct {
	Origin uint64
	To     nodekey.NodeID
	Epoch  uint64
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("meshquic: daemon %016x moved to node %s (epoch %d)", e.Origin, e.To, e.Epoch)
}

// Is matches ErrMoved and ErrRemote (a MovedError always comes from a peer
// on the caller's side).
func (e *MovedError) Is(target error) bool { return target == ErrMoved || target == ErrRemote }

// wireError is the error frame's body.
type wireError struct {
	Code    string `msgpack:"c"`
	Message string `msgpack:"m"`
	// Set only for CodeMoved.
	Origin uint64 `msgpack:"o,omitempty"`
	To     []byte `msgpack:"t,omitempty"`
	Epoch  uint64 `msgpack:"e,omitempty"`
}

// toWire chooses the code a handler's error is reported with.
func toWire(err error) wireError {
	var me *MovedError
	if errors.As(err, &me) {
		return wireError{Code: CodeMoved, Message: me.Error(), Origin: me.Origin, To: me.To[:], Epoch: me.Epoch}
	}
	var c Coder
	if errors.As(err, &c) {
		// Before a relayed RemoteError: a handler that classified its
		// failure (say "unknown kind" because a fetch from a third node
		// failed) means its class, not the third node's.
		return wireError{Code: c.WireCode(), Message: err.Error()}
	}
	var re *RemoteError
	if errors.As(err, &re) {
		// A handler relaying a peer's error keeps its code.
		return wireError{Code: re.Code, Message: re.Message}
	}
	for _, cs := range codeSentinels {
		if errors.Is(err, cs.err) {
			return wireError{Code: cs.code, Message: err.Error()}
		}
	}
	return wireError{Code: CodeInternal, Message: err.Error()}
}

// fromWire rebuilds the caller-side error.
func fromWire(peer nodekey.NodeID, w wireError) error {
	if w.Code == CodeMoved {
		if len(w.To) != nodekey.NodeIDSize {
			return fmt.Errorf("%w: moved error without a node id", ErrMalformed)
		}
		var to nodekey.NodeID
		copy(to[:], w.To)
		return &MovedError{Origin: w.Origin, To: to, Epoch: w.Epoch}
	}
	return &RemoteError{Peer: peer, Code: w.Code, Message: w.Message}
}
