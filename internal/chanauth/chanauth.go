// Package chanauth lets a channel home verify permission tokens: it adapts
// internal/token to internal/channel's Authorizer, so neither package
// needs to know the other.
package chanauth

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/token"
)

// Tokens verifies a subscriber's or publisher's token against the issuer
// keys a restricted channel was created with. The subject is the daemon's
// entity id (its public key), not the node it runs on, so a token keeps
// working after the daemon migrates.
type Tokens struct {
	// MaxDepth bounds delegation chains; 0 is token.DefaultMaxDepth.
	MaxDepth int
}

var _ channel.Authorizer = Tokens{}

// Allow implements channel.Authorizer.
func (a Tokens) Allow(def channel.Definition, subject [32]byte, scope channel.Scope, tok []byte, now time.Time) error {
	want, err := tokenScope(scope)
	if err != nil {
		return err
	}
	if len(tok) == 0 {
		return fmt.Errorf("%w: %q is restricted and no token was given", token.ErrMalformed, def.Name)
	}
	trusted := make([]ed25519.PublicKey, len(def.Trusted))
	for i := range def.Trusted {
		trusted[i] = ed25519.PublicKey(def.Trusted[i][:])
	}
	req := token.Request{Subject: ed25519.PublicKey(subject[:]), Scope: want, Channel: def.Name, Now: now}
	return token.VerifyEncoded(tok, req, token.VerifyOptions{Trusted: trusted, MaxDepth: a.MaxDepth})
}

// tokenScope maps the channel's scopes to the token's bits (the two
// packages number them differently on purpose: each owns its encoding).
func tokenScope(s channel.Scope) (token.Scope, error) {
	switch s {
	case channel.ScopeSubscribe:
		return token.ScopeSubscribe, nil
	case channel.ScopePublish:
		return token.ScopePublish, nil
	}
	return 0, fmt.Errorf("%w: unknown channel scope %d", token.ErrWrongScope, s)
}
