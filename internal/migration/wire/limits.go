package wire

import "errors"

// Errors from Encode and Decode; test with errors.Is. A frame over a limit
// matches both ErrTooLarge and ErrMalformed.
var (
	ErrMalformed = errors.New("migration wire: malformed message")
	ErrTooLarge  = errors.New("migration wire: over limit")
)

// Limits bound what a decoder accepts, so a peer cannot make us allocate more
// than a frame's worth of memory or hold absurd values.
type Limits struct {
	MaxFrame        int // whole encoded message
	MaxChunkData    int // SnapshotChunk.Data
	MaxEvents       int // events per ReplayBatch
	MaxEventPayload int // one event's payload
	MaxNodeID       int // bytes of a node id
	MaxText         int // Abort.Text
	MaxEnvelope     int // Prepare.Envelope
}

// DefaultLimits fit the default 256 KiB chunk size with room to spare.
func DefaultLimits() Limits {
	return Limits{
		MaxFrame:        4 << 20,
		MaxChunkData:    1 << 20,
		MaxEvents:       4096,
		MaxEventPayload: 1 << 20,
		MaxNodeID:       256,
		MaxText:         1024,
		MaxEnvelope:     1024,
	}
}
