package node

import (
	"errors"
	"fmt"
)

// Errors the admin API tells apart; test with errors.Is. Host, store and
// transport errors are wrapped, not replaced, so their sentinels match too.
var (
	ErrBadConfig      = errors.New("node: bad configuration")
	ErrBadRequest     = errors.New("node: bad request")
	ErrDaemonNotFound = errors.New("node: daemon not found")
	ErrAmbiguous      = errors.New("node: ambiguous daemon name")
	ErrNameTaken      = errors.New("node: name already used on this node")
	ErrUnknownNode    = errors.New("node: unknown node")
	ErrUnknownKind    = errors.New("node: unknown kind")
	ErrRefused        = errors.New("node: module refused")
	ErrEventFailed    = errors.New("node: event failed")
	ErrUnavailable    = errors.New("node: peer unavailable")
	ErrNoIdentity     = errors.New("node: this node does not hold the daemon's identity")
	ErrShuttingDown   = errors.New("node: shutting down")
)

// Wire codes of the node's errors on the mesh (transport Coder).
const (
	codeEventFailed = "event_failed"
	codeRefused     = "refused"
	codeUnknownKind = "unknown_kind"
	codeNameTaken   = "name_taken"
	codeBadRequest  = "bad_request"
)

// codedError gives a node error a wire code so the peer that asked can map
// it back to the same sentinel (see fromRemote).
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string    { return e.err.Error() }
func (e *codedError) Unwrap() error    { return e.err }
func (e *codedError) WireCode() string { return e.code }

func coded(code string, err error) error { return &codedError{code: code, err: err} }

// wrap prefixes a sentinel unless err already matches it.
func wrap(sentinel, err error) error {
	if err == nil || errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
