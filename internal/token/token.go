// Package token implements wasmesh permission tokens: ed25519-signed grants
// of scopes on channels to a subject key, optionally delegated along a
// chain of embedded parents. See README.md for the wire format.
package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
)

// Version is the only encoding version this package reads and writes.
const Version = 1

// MaxSize caps an encoded token, parents included, so a decoder's work and
// a channel message carrying one stay bounded.
const MaxSize = 4096

// HardMaxDepth caps a chain (the token and its ancestors) whatever
// VerifyOptions ask; DefaultMaxDepth is used when they ask nothing.
const (
	HardMaxDepth    = 8
	DefaultMaxDepth = 4
)

// TextPrefix starts the text form of a token.
const TextPrefix = "wasmesh-token-v1:"

// sigContext separates token signatures from anything else the same key
// signs (a daemon's key also signs its output chain).
const sigContext = "wasmesh-token-v1\x00"

// Scope is a set of permissions.
type Scope uint8

// Scopes a token can grant.
const (
	ScopePublish Scope = 1 << iota
	ScopeSubscribe
	// ScopeDelegate lets the subject issue child tokens within its own.
	ScopeDelegate
	ScopeAdmin

	scopeAll = ScopePublish | ScopeSubscribe | ScopeDelegate | ScopeAdmin
)

var scopeNames = [...]struct {
	s    Scope
	name string
}{{ScopePublish, "publish"}, {ScopeSubscribe, "subscribe"}, {ScopeDelegate, "delegate"}, {ScopeAdmin, "admin"}}

// Has reports whether s grants every scope in want.
func (s Scope) Has(want Scope) bool { return s&want == want }

// String lists the scopes comma-separated, in a fixed order.
func (s Scope) String() string {
	var parts []string
	for _, n := range scopeNames {
		if s&n.s != 0 {
			parts = append(parts, n.name)
		}
	}
	if rest := s &^ scopeAll; rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%02x", uint8(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// ParseScope reads a comma-separated list such as "subscribe,publish".
func ParseScope(s string) (Scope, error) {
	var out Scope
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		found := false
		for _, n := range scopeNames {
			if part == n.name {
				out |= n.s
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: unknown scope %q (want publish, subscribe, delegate or admin)", ErrMalformed, part)
		}
	}
	return out, nil
}

// Claims is what an issuer grants.
type Claims struct {
	// Subject is the key the grant is for: a daemon's entity id (its
	// ed25519 public key) or a client's key.
	Subject   ed25519.PublicKey
	Scopes    Scope
	Channel   Pattern
	NotBefore time.Time
	Expiry    time.Time
}

// Token is a decoded grant. Parent is nil for a root token, which an
// issuer in VerifyOptions.Trusted must have signed.
type Token struct {
	Version   uint8
	Issuer    [32]byte
	Subject   [32]byte
	Scopes    Scope
	Channel   Pattern
	NotBefore int64 // unix seconds, inclusive
	Expiry    int64 // unix seconds, exclusive
	Parent    *Token
	Signature [64]byte
}

// Depth counts the token and its ancestors.
func (t Token) Depth() int {
	n := 1
	for p := t.Parent; p != nil; p = p.Parent {
		n++
	}
	return n
}

// Root returns the chain's first token.
func (t Token) Root() Token {
	for t.Parent != nil {
		t = *t.Parent
	}
	return t
}

func checkClaims(c Claims) (sub [32]byte, nb, exp int64, err error) {
	if len(c.Subject) != ed25519.PublicKeySize {
		return sub, 0, 0, fmt.Errorf("%w: subject key is %d bytes, want %d", ErrMalformed, len(c.Subject), ed25519.PublicKeySize)
	}
	copy(sub[:], c.Subject)
	if c.Scopes == 0 || c.Scopes&^scopeAll != 0 {
		return sub, 0, 0, fmt.Errorf("%w: scopes %s", ErrMalformed, c.Scopes)
	}
	if _, err := ParsePattern(string(c.Channel)); err != nil {
		return sub, 0, 0, err
	}
	nb, exp = c.NotBefore.Unix(), c.Expiry.Unix()
	if nb < 0 || exp <= nb {
		return sub, 0, 0, fmt.Errorf("%w: validity window %d..%d is empty or before 1970", ErrMalformed, nb, exp)
	}
	return sub, nb, exp, nil
}

// Issue signs a root grant.
func Issue(issuer ed25519.PrivateKey, c Claims) (Token, error) {
	return sign(issuer, c, nil)
}

// Delegate signs a child of parent with holder, which must be the key
// parent was granted to. The rules Verify applies to the chain are checked
// here too, so a delegate that cannot verify is never produced; parent's
// own signatures are not checked here (Verify does that).
func Delegate(parent Token, holder ed25519.PrivateKey, c Claims) (Token, error) {
	if len(holder) != ed25519.PrivateKeySize {
		return Token{}, fmt.Errorf("%w: holder key is %d bytes", ErrMalformed, len(holder))
	}
	if !bytes.Equal(holder.Public().(ed25519.PublicKey), parent.Subject[:]) {
		return Token{}, fmt.Errorf("%w: the holder key is not the parent's subject", ErrBadDelegation)
	}
	p := parent
	t, err := sign(holder, c, &p)
	if err != nil {
		return Token{}, err
	}
	if err := checkLink(t, p); err != nil {
		return Token{}, err
	}
	if d := t.Depth(); d > HardMaxDepth {
		return Token{}, fmt.Errorf("%w: chain of %d, at most %d", ErrTooDeep, d, HardMaxDepth)
	}
	if n := len(t.Encode()); n > MaxSize {
		return Token{}, fmt.Errorf("%w: encoding is %d bytes, at most %d", ErrMalformed, n, MaxSize)
	}
	return t, nil
}

func sign(key ed25519.PrivateKey, c Claims, parent *Token) (Token, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Token{}, fmt.Errorf("%w: issuer key is %d bytes", ErrMalformed, len(key))
	}
	sub, nb, exp, err := checkClaims(c)
	if err != nil {
		return Token{}, err
	}
	t := Token{Version: Version, Subject: sub, Scopes: c.Scopes, Channel: c.Channel, NotBefore: nb, Expiry: exp, Parent: parent}
	copy(t.Issuer[:], key.Public().(ed25519.PublicKey))
	copy(t.Signature[:], ed25519.Sign(key, t.signed()))
	return t, nil
}

// Layout, all integers big-endian:
//
//	version u8 | issuer [32] | subject [32] | scopes u8 | not_before u64 |
//	expiry u64 | pattern_len u8 | pattern | parent_len u16 | parent | sig [64]
const fixedSize = 1 + 32 + 32 + 1 + 8 + 8 + 1 + 2 + 64

func (t Token) body() []byte {
	var parent []byte
	if t.Parent != nil {
		parent = t.Parent.Encode()
	}
	b := make([]byte, 0, fixedSize+len(t.Channel)+len(parent))
	b = append(b, t.Version)
	b = append(b, t.Issuer[:]...)
	b = append(b, t.Subject[:]...)
	b = append(b, byte(t.Scopes))
	b = binary.BigEndian.AppendUint64(b, uint64(t.NotBefore))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expiry))
	b = append(b, byte(len(t.Channel)))
	b = append(b, t.Channel...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(parent)))
	b = append(b, parent...)
	return b
}

func (t Token) signed() []byte { return append([]byte(sigContext), t.body()...) }

// Encode returns the binary form.
func (t Token) Encode() []byte { return append(t.body(), t.Signature[:]...) }

// String returns the text form, TextPrefix followed by unpadded base64url.
func (t Token) String() string { return TextPrefix + base64.RawURLEncoding.EncodeToString(t.Encode()) }

// Decode reads the binary form strictly: the whole of b must be exactly one
// canonical token within MaxSize and HardMaxDepth. Signatures are not
// checked; Verify does that.
func Decode(b []byte) (Token, error) {
	if len(b) > MaxSize {
		return Token{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSize)
	}
	return decode(b, 1)
}

func decode(b []byte, depth int) (Token, error) {
	if depth > HardMaxDepth {
		return Token{}, fmt.Errorf("%w: chain deeper than %d", ErrTooDeep, HardMaxDepth)
	}
	if len(b) == 0 {
		return Token{}, fmt.Errorf("%w: empty", ErrTruncated)
	}
	var t Token
	t.Version = b[0]
	if t.Version != Version {
		return Token{}, fmt.Errorf("%w: version %d, this build reads %d", ErrUnknownVersion, t.Version, Version)
	}
	if len(b) < fixedSize {
		return Token{}, fmt.Errorf("%w: %d bytes, a token has at least %d", ErrTruncated, len(b), fixedSize)
	}
	r := b[1:]
	copy(t.Issuer[:], r)
	copy(t.Subject[:], r[32:])
	r = r[64:]
	t.Scopes = Scope(r[0])
	if t.Scopes == 0 || t.Scopes&^scopeAll != 0 {
		return Token{}, fmt.Errorf("%w: scopes byte 0x%02x", ErrMalformed, r[0])
	}
	nb, exp := binary.BigEndian.Uint64(r[1:]), binary.BigEndian.Uint64(r[9:])
	if nb > math.MaxInt64 || exp > math.MaxInt64 || exp <= nb {
		return Token{}, fmt.Errorf("%w: validity window %d..%d", ErrMalformed, nb, exp)
	}
	t.NotBefore, t.Expiry = int64(nb), int64(exp)
	r = r[17:]
	plen := int(r[0])
	r = r[1:]
	if len(r) < plen+2+64 {
		return Token{}, fmt.Errorf("%w: channel pattern of %d bytes runs past the end", ErrTruncated, plen)
	}
	p, err := ParsePattern(string(r[:plen]))
	if err != nil {
		return Token{}, err
	}
	t.Channel = p
	r = r[plen:]
	parentLen := int(binary.BigEndian.Uint16(r))
	r = r[2:]
	if len(r) < parentLen+64 {
		return Token{}, fmt.Errorf("%w: parent of %d bytes runs past the end", ErrTruncated, parentLen)
	}
	if parentLen > 0 {
		parent, err := decode(r[:parentLen], depth+1)
		if err != nil {
			return Token{}, fmt.Errorf("parent: %w", err)
		}
		t.Parent = &parent
	}
	r = r[parentLen:]
	if len(r) != 64 {
		return Token{}, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(r)-64)
	}
	copy(t.Signature[:], r)
	return t, nil
}

// Parse reads the text form; surrounding whitespace (a file's final
// newline) is allowed, nothing else is.
func Parse(text []byte) (Token, error) {
	s := bytes.TrimSpace(text)
	if len(s) > len(TextPrefix)+base64.RawURLEncoding.EncodedLen(MaxSize) {
		return Token{}, fmt.Errorf("%w: text form of %d bytes is too long", ErrMalformed, len(s))
	}
	rest, ok := bytes.CutPrefix(s, []byte(TextPrefix))
	if !ok {
		if bytes.HasPrefix(s, []byte("wasmesh-token-")) {
			return Token{}, fmt.Errorf("%w: text form %q", ErrUnknownVersion, s[:min(len(s), 20)])
		}
		return Token{}, fmt.Errorf("%w: text form does not start with %q", ErrMalformed, TextPrefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(string(rest))
	if err != nil {
		return Token{}, fmt.Errorf("%w: base64url: %v", ErrMalformed, err)
	}
	return Decode(b)
}
