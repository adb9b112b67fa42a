package wasmbin

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error for bytes that are not a well-formed
// core wasm module.
var ErrMalformed = errors.New("malformed wasm module")

// ErrUnsupported is wrapped by errors for well-formed constructs wasmesh does
// not run (threads/atomics, exceptions, GC, typed function references,
// 64-bit tables).
var ErrUnsupported = errors.New("unsupported wasm feature")

// Error locates a parse failure. Offset is the byte offset in the module (or
// in the body given to DecodeInstr) where the problem was detected.
type Error struct {
	Kind   error // ErrMalformed or ErrUnsupported
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	what := "malformed"
	if e.Kind == ErrUnsupported {
		what = "unsupported"
	}
	return fmt.Sprintf("wasm: %s: %s at offset %d (0x%x)", what, e.Msg, e.Offset, e.Offset)
}

// Unwrap returns the sentinel (ErrMalformed or ErrUnsupported).
func (e *Error) Unwrap() error { return e.Kind }

func malformed(off int, format string, args ...any) error {
	return &Error{Kind: ErrMalformed, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func unsupported(off int, format string, args ...any) error {
	return &Error{Kind: ErrUnsupported, Offset: off, Msg: fmt.Sprintf(format, args...)}
}
