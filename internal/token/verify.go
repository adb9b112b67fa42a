package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"
)

// Request is what a holder asks to do.
type Request struct {
	Subject ed25519.PublicKey
	Scope   Scope
	Channel string
	Now     time.Time
}

// VerifyOptions say whom to trust.
type VerifyOptions struct {
	// Trusted are the keys a chain's root issuer must be one of.
	Trusted []ed25519.PublicKey
	// MaxDepth bounds the chain (the token and its ancestors); 0 means
	// DefaultMaxDepth, and anything above HardMaxDepth is HardMaxDepth.
	MaxDepth int
}

func short(k [32]byte) string { return hex.EncodeToString(k[:4]) }

// Verify checks that t, with its whole chain, permits req. The chain is
// checked before the request so a forged token never learns which part of
// a request it would have failed.
func Verify(t Token, req Request, opts VerifyOptions) error {
	if err := VerifyChain(t, opts); err != nil {
		return err
	}
	return checkRequest(t, req)
}

// VerifyChain checks t's signatures, delegation links, depth and root
// issuer, but no request: what an operator inspecting a token asks.
func VerifyChain(t Token, opts VerifyOptions) error {
	maxDepth := opts.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	maxDepth = min(maxDepth, HardMaxDepth)
	if d := t.Depth(); d > maxDepth {
		return fmt.Errorf("%w: chain of %d, at most %d", ErrTooDeep, d, maxDepth)
	}
	for c := &t; c != nil; c = c.Parent {
		if c.Version != Version {
			return fmt.Errorf("%w: version %d", ErrUnknownVersion, c.Version)
		}
		if !ed25519.Verify(c.Issuer[:], c.signed(), c.Signature[:]) {
			return fmt.Errorf("%w: by issuer %s", ErrBadSignature, short(c.Issuer))
		}
		if c.Parent != nil {
			if err := checkLink(*c, *c.Parent); err != nil {
				return err
			}
		}
	}
	root := t.Root()
	trusted := false
	for _, k := range opts.Trusted {
		if bytes.Equal(k, root.Issuer[:]) {
			trusted = true
		}
	}
	if !trusted {
		return fmt.Errorf("%w: root issuer %s", ErrUntrustedIssuer, hex.EncodeToString(root.Issuer[:]))
	}
	return nil
}

func checkRequest(t Token, req Request) error {
	if !bytes.Equal(req.Subject, t.Subject[:]) {
		return fmt.Errorf("%w: granted to %s, presented by %s", ErrWrongSubject, short(t.Subject), hex.EncodeToString(req.Subject[:min(4, len(req.Subject))]))
	}
	// Windows nest along a valid chain, so the leaf's is the chain's.
	now := req.Now.Unix()
	if now < t.NotBefore {
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, time.Unix(t.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	if now >= t.Expiry {
		return fmt.Errorf("%w: at %s", ErrExpired, time.Unix(t.Expiry, 0).UTC().Format(time.RFC3339))
	}
	if req.Scope == 0 || !t.Scopes.Has(req.Scope) {
		return fmt.Errorf("%w: %s asked, %s granted", ErrWrongScope, req.Scope, t.Scopes)
	}
	if !t.Channel.Match(req.Channel) {
		return fmt.Errorf("%w: %q is not within %q", ErrWrongChannel, req.Channel, t.Channel)
	}
	return nil
}

// VerifyEncoded decodes b (binary or text form) and verifies it, which is
// what an authorizer holding the raw bytes a client presented needs.
func VerifyEncoded(b []byte, req Request, opts VerifyOptions) error {
	var t Token
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("wasmesh-token-")) {
		t, err = Parse(b)
	} else {
		t, err = Decode(b)
	}
	if err != nil {
		return err
	}
	return Verify(t, req, opts)
}

// checkLink checks child against the parent it embeds: the parent's
// subject signed it, the parent may delegate, and the child grants no more
// than the parent on no more channels for no longer.
func checkLink(child, parent Token) error {
	switch {
	case child.Issuer != parent.Subject:
		return fmt.Errorf("%w: issuer %s is not the parent's subject %s", ErrBadDelegation, short(child.Issuer), short(parent.Subject))
	case !parent.Scopes.Has(ScopeDelegate):
		return fmt.Errorf("%w: the parent (scopes %s) lacks the delegate scope", ErrBadDelegation, parent.Scopes)
	case !parent.Scopes.Has(child.Scopes):
		return fmt.Errorf("%w: scopes %s exceed the parent's %s", ErrBadDelegation, child.Scopes, parent.Scopes)
	case !child.Channel.Within(parent.Channel):
		return fmt.Errorf("%w: channel %q is not within the parent's %q", ErrBadDelegation, child.Channel, parent.Channel)
	case child.NotBefore < parent.NotBefore || child.Expiry > parent.Expiry:
		return fmt.Errorf("%w: window %d..%d is outside the parent's %d..%d", ErrBadDelegation, child.NotBefore, child.Expiry, parent.NotBefore, parent.Expiry)
	}
	return nil
}
