package protocol

import (
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// Failure reasons (SPEC R-M7), re-exported from the wire format.
const (
	NotReady                = wire.ReasonNotReady
	NotReadyTimeout         = wire.ReasonNotReadyTimeout
	FactoryNotFound         = wire.ReasonFactoryNotFound
	ComputeNotSupported     = wire.ReasonComputeNotSupported
	StateFailed             = wire.ReasonStateFailed
	AlreadyMigrating        = wire.ReasonAlreadyMigrating
	IdentityTransportFailed = wire.ReasonIdentityTransportFailed
	TargetUnavailable       = wire.ReasonTargetUnavailable
	Timeout                 = wire.ReasonTimeout
	Cancelled               = wire.ReasonCancelled
	BufferOverflow          = wire.ReasonBufferOverflow
)

// Failure is why a migration did not complete. Compare with errors.As, or
// errors.Is against a Failure with the same Reason (&Failure{Reason: Timeout}).
type Failure struct {
	Reason   Reason
	Attempts int    // for NotReadyTimeout: attempts made
	Text     string // detail, e.g. StateFailed's cause
}

func (f *Failure) Error() string {
	s := "migration failed: " + f.Reason.String()
	if f.Reason == NotReadyTimeout {
		s += fmt.Sprintf(" after %d attempts", f.Attempts)
	}
	if f.Text != "" {
		s += ": " + f.Text
	}
	return s
}

// Retriable reports whether a fresh attempt may succeed; only NotReady is.
func (f *Failure) Retriable() bool { return f.Reason == NotReady }

// Is matches another *Failure by reason only.
func (f *Failure) Is(target error) bool {
	t, ok := target.(*Failure)
	return ok && t.Reason == f.Reason
}

func failure(r Reason, format string, args ...any) *Failure {
	return &Failure{Reason: r, Text: fmt.Sprintf(format, args...)}
}

// AsFailure turns any error from the I/O layer into a Failure: a wrapped
// *Failure keeps its reason, anything else is StateFailed with its text;
// nil stays nil.
func AsFailure(err error) *Failure {
	if err == nil {
		return nil
	}
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Reason: StateFailed, Text: err.Error()}
}

// IdentityFailed is the Failure for an envelope that is present but does not
// open (SPEC R-M5): terminal, never retried.
func IdentityFailed(err error) *Failure {
	return &Failure{Reason: IdentityTransportFailed, Text: err.Error()}
}

func abortMsg(h wire.Header, p Phase, f *Failure) wire.Abort {
	text := f.Text
	if len(text) > 512 {
		text = text[:512]
	}
	return wire.Abort{Header: h, Phase: p, Reason: f.Reason, Attempts: uint32(f.Attempts), Text: toUTF8(text)}
}

func failureFromAbort(a wire.Abort) *Failure {
	return &Failure{Reason: a.Reason, Attempts: int(a.Attempts), Text: a.Text}
}

// toUTF8 keeps Abort encodable after truncation split a rune.
func toUTF8(s string) string {
	return string([]rune(s))
}
