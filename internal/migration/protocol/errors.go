package protocol

import (
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// Protocol errors from Step and Handle; test with errors.Is. None of them
// changes the machine's state.
var (
	// ErrUnexpectedSender: the message came from a peer that the receiving
	// role does not expect for that message (SPEC R-M10).
	ErrUnexpectedSender = errors.New("migration: unexpected sender")
	// ErrWrongPhase: the message or input does not belong in the current
	// phase (SPEC R-M1).
	ErrWrongPhase = errors.New("migration: wrong phase")
	// ErrUnknownMigration: the message is for another migration id.
	ErrUnknownMigration = errors.New("migration: unknown migration")
	// ErrStaleAttempt: the message belongs to an earlier attempt (SPEC R-M9).
	ErrStaleAttempt = errors.New("migration: stale attempt")
	// ErrInvalid: the message is well-formed but contradicts the migration
	// (wrong origin, digest, sequence...).
	ErrInvalid = errors.New("migration: invalid message")
	// ErrAlreadyMigrating: the daemon is already in another migration.
	ErrAlreadyMigrating = errors.New("migration: daemon already migrating")
	// ErrFinished: the machine has reached its outcome.
	ErrFinished = errors.New("migration: finished")
	// ErrPastCutover: the request would undo a handover that may already
	// have happened (cancel or abort after the point of no return).
	ErrPastCutover = errors.New("migration: past the point of no return")
	// ErrReplayGap: a replayed event skipped an input sequence. The in-order
	// prefix was applied; the rest waits for retransmission.
	ErrReplayGap = errors.New("migration: gap in replayed events")
	// ErrBufferFull: an event could not be held (target side, before live).
	ErrBufferFull = errors.New("migration: event buffer full")
	// ErrConfig: a machine was built with an unusable configuration.
	ErrConfig = errors.New("migration: bad configuration")
)

// SenderError details an ErrUnexpectedSender.
type SenderError struct {
	Role Role
	Kind wire.Kind
	From NodeID
	Want []NodeID
}

func (e *SenderError) Error() string {
	return fmt.Sprintf("migration: %s refused %s from %q (expected one of %q)", e.Role, e.Kind, e.From, e.Want)
}

// Is makes a SenderError match ErrUnexpectedSender.
func (e *SenderError) Is(target error) bool { return target == ErrUnexpectedSender }

// PhaseError details an ErrWrongPhase.
type PhaseError struct {
	Role  Role
	What  string // message kind or input type
	Phase Phase  // the receiver's phase; 0 before the first message
}

func (e *PhaseError) Error() string {
	return fmt.Sprintf("migration: %s in phase %s refused %s", e.Role, e.Phase, e.What)
}

// Is makes a PhaseError match ErrWrongPhase.
func (e *PhaseError) Is(target error) bool { return target == ErrWrongPhase }

func checkSender(role Role, k wire.Kind, from NodeID, want ...NodeID) error {
	for _, w := range want {
		if from == w {
			return nil
		}
	}
	return &SenderError{Role: role, Kind: k, From: from, Want: want}
}

func checkHeader(h wire.Header, id uint64, attempt uint32) error {
	switch {
	case h.ID != id:
		return fmt.Errorf("%w: id %d, this is %d", ErrUnknownMigration, h.ID, id)
	case h.Attempt < attempt:
		return fmt.Errorf("%w: attempt %d, current %d", ErrStaleAttempt, h.Attempt, attempt)
	case h.Attempt > attempt:
		return fmt.Errorf("%w: attempt %d is ahead of %d", ErrInvalid, h.Attempt, attempt)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
