package token

import "errors"

// Refusals. Every error this package returns wraps exactly one of these,
// with detail naming what failed.
var (
	ErrExpired         = errors.New("token expired")
	ErrNotYetValid     = errors.New("token not yet valid")
	ErrWrongScope      = errors.New("token does not grant the scope")
	ErrWrongChannel    = errors.New("token does not cover the channel")
	ErrBadSignature    = errors.New("token signature invalid")
	ErrTruncated       = errors.New("token truncated")
	ErrMalformed       = errors.New("token malformed")
	ErrTooDeep         = errors.New("token delegation chain too deep")
	ErrWrongSubject    = errors.New("token held by another subject")
	ErrUntrustedIssuer = errors.New("token root issuer not trusted")
	ErrUnknownVersion  = errors.New("token version unknown")
	ErrBadDelegation   = errors.New("token delegation invalid")
)
