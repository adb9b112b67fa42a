package wire

import "fmt"

// Reason is why a migration failed (SPEC R-M7). Values are part of the wire
// format; never renumber.
type Reason uint8

// Failure reasons.
const (
	ReasonNotReady                Reason = 1
	ReasonNotReadyTimeout         Reason = 2
	ReasonFactoryNotFound         Reason = 3
	ReasonComputeNotSupported     Reason = 4
	ReasonStateFailed             Reason = 5
	ReasonAlreadyMigrating        Reason = 6
	ReasonIdentityTransportFailed Reason = 7
	ReasonTargetUnavailable       Reason = 8
	ReasonTimeout                 Reason = 9
	ReasonCancelled               Reason = 10
	ReasonBufferOverflow          Reason = 11
)

func (r Reason) String() string {
	switch r {
	case ReasonNotReady:
		return "NotReady"
	case ReasonNotReadyTimeout:
		return "NotReadyTimeout"
	case ReasonFactoryNotFound:
		return "FactoryNotFound"
	case ReasonComputeNotSupported:
		return "ComputeNotSupported"
	case ReasonStateFailed:
		return "StateFailed"
	case ReasonAlreadyMigrating:
		return "AlreadyMigrating"
	case ReasonIdentityTransportFailed:
		return "IdentityTransportFailed"
	case ReasonTargetUnavailable:
		return "TargetUnavailable"
	case ReasonTimeout:
		return "Timeout"
	case ReasonCancelled:
		return "Cancelled"
	case ReasonBufferOverflow:
		return "BufferOverflow"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Valid reports whether r is a known reason.
func (r Reason) Valid() bool { return r >= ReasonNotReady && r <= ReasonBufferOverflow }
