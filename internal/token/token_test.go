package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// key derives a deterministic key from a one-byte seed so tests are
// reproducible.
func key(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var (
	t0  = time.Unix(1_700_000_000, 0)
	day = 24 * time.Hour
)

func claims(sub ed25519.PrivateKey, s Scope, p Pattern) Claims {
	return Claims{Subject: pub(sub), Scopes: s, Channel: p, NotBefore: t0, Expiry: t0.Add(day)}
}

func mustIssue(t *testing.T, iss ed25519.PrivateKey, c Claims) Token {
	t.Helper()
	tok, err := Issue(iss, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustDelegate(t *testing.T, parent Token, holder ed25519.PrivateKey, c Claims) Token {
	t.Helper()
	tok, err := Delegate(parent, holder, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoundTrip(t *testing.T) {
	root, a, b := key(1), key(2), key(3)
	parent := mustIssue(t, root, claims(a, ScopeSubscribe|ScopePublish|ScopeDelegate, "orders/*"))
	child := mustDelegate(t, parent, a, claims(b, ScopeSubscribe, "orders/eu"))
	for _, tok := range []Token{parent, child} {
		got, err := Decode(tok.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Encode(), tok.Encode()) || got.Depth() != tok.Depth() {
			t.Fatalf("binary round trip differs")
		}
		txt, err := Parse([]byte(tok.String() + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if txt.String() != tok.String() || !strings.HasPrefix(tok.String(), TextPrefix) {
			t.Fatalf("text round trip differs: %s", txt)
		}
	}
	req := Request{Subject: pub(b), Scope: ScopeSubscribe, Channel: "orders/eu", Now: t0.Add(time.Hour)}
	if err := VerifyEncoded([]byte(child.String()), req, VerifyOptions{Trusted: []ed25519.PublicKey{pub(root)}}); err != nil {
		t.Fatal(err)
	}
	if err := VerifyEncoded(child.Encode(), req, VerifyOptions{Trusted: []ed25519.PublicKey{pub(root)}}); err != nil {
		t.Fatal(err)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k := key(9)
	got, err := ParseKey(MarshalKey(k))
	if err != nil || !got.Equal(k) {
		t.Fatalf("%v", err)
	}
	for _, bad := range []string{"", "wasmesh-key-v1:", "wasmesh-key-v1:AAAA", "nope:" + string(MarshalKey(k))} {
		if _, err := ParseKey([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// RefusalCase is one request a verifier must refuse, with the sentinel it
// must refuse it with; an end-to-end test can replay the same cases.
type RefusalCase struct {
	Name  string
	Token Token
	Req   Request
	Opts  VerifyOptions
	Want  error
}

// RefusalCases builds every refusal Verify makes from fixed keys.
func RefusalCases(t *testing.T) []RefusalCase {
	root, a, b, other := key(1), key(2), key(3), key(4)
	trust := VerifyOptions{Trusted: []ed25519.PublicKey{pub(root)}}
	now := t0.Add(time.Hour)
	grant := mustIssue(t, root, claims(a, ScopeSubscribe|ScopeDelegate, "orders/*"))
	ok := Request{Subject: pub(a), Scope: ScopeSubscribe, Channel: "orders/eu", Now: now}
	with := func(f func(*Request)) Request { r := ok; f(&r); return r }

	forged := grant
	forged.Scopes |= ScopePublish
	badSig := grant
	badSig.Signature[0] ^= 1

	// Links Delegate would refuse, signed by hand.
	forge := func(parent Token, holder ed25519.PrivateKey, c Claims) Token {
		sub, nb, exp, err := checkClaims(c)
		if err != nil {
			t.Fatal(err)
		}
		p := parent
		tok := Token{Version: Version, Subject: sub, Scopes: c.Scopes, Channel: c.Channel, NotBefore: nb, Expiry: exp, Parent: &p}
		copy(tok.Issuer[:], pub(holder))
		copy(tok.Signature[:], ed25519.Sign(holder, tok.signed()))
		return tok
	}
	noDelegate := mustIssue(t, root, claims(a, ScopeSubscribe, "orders/*"))
	wider := claims(b, ScopeSubscribe, "*")
	longer := claims(b, ScopeSubscribe, "orders/eu")
	longer.Expiry = t0.Add(2 * day)
	bReq := with(func(r *Request) { r.Subject = pub(b) })

	chain := grant
	holder := a
	for i := range 4 {
		next := key(byte(10 + i))
		chain = mustDelegate(t, chain, holder, claims(next, ScopeSubscribe|ScopeDelegate, "orders/*"))
		holder = next
	}
	deepReq := with(func(r *Request) { r.Subject = pub(holder) })

	unknown := grant
	unknown.Version = 2

	return []RefusalCase{
		{"expired", grant, with(func(r *Request) { r.Now = t0.Add(day) }), trust, ErrExpired},
		{"not yet valid", grant, with(func(r *Request) { r.Now = t0.Add(-time.Second) }), trust, ErrNotYetValid},
		{"wrong scope", grant, with(func(r *Request) { r.Scope = ScopePublish }), trust, ErrWrongScope},
		{"no scope asked", grant, with(func(r *Request) { r.Scope = 0 }), trust, ErrWrongScope},
		{"wrong channel", grant, with(func(r *Request) { r.Channel = "billing/eu" }), trust, ErrWrongChannel},
		{"prefix itself", grant, with(func(r *Request) { r.Channel = "orders" }), trust, ErrWrongChannel},
		{"invalid channel", grant, with(func(r *Request) { r.Channel = "orders/EU" }), trust, ErrWrongChannel},
		{"tampered claims", forged, ok, trust, ErrBadSignature},
		{"tampered signature", badSig, ok, trust, ErrBadSignature},
		{"wrong subject", grant, with(func(r *Request) { r.Subject = pub(other) }), trust, ErrWrongSubject},
		{"untrusted issuer", grant, ok, VerifyOptions{Trusted: []ed25519.PublicKey{pub(other)}}, ErrUntrustedIssuer},
		{"no trust at all", grant, ok, VerifyOptions{}, ErrUntrustedIssuer},
		{"too deep for default", chain, deepReq, trust, ErrTooDeep},
		{"too deep for option", mustDelegate(t, grant, a, claims(b, ScopeSubscribe, "orders/eu")), bReq, VerifyOptions{Trusted: trust.Trusted, MaxDepth: 1}, ErrTooDeep},
		{"unknown version", unknown, ok, trust, ErrUnknownVersion},
		{"parent lacks delegate", forge(noDelegate, a, claims(b, ScopeSubscribe, "orders/eu")), bReq, trust, ErrBadDelegation},
		{"scopes widen", forge(grant, a, claims(b, ScopeSubscribe|ScopeAdmin, "orders/eu")), bReq, trust, ErrBadDelegation},
		{"channel widens", forge(grant, a, wider), bReq, trust, ErrBadDelegation},
		{"window widens", forge(grant, a, longer), bReq, trust, ErrBadDelegation},
		{"issuer not parent's subject", forge(grant, other, claims(b, ScopeSubscribe, "orders/eu")), bReq, trust, ErrBadDelegation},
	}
}

func TestVerifyRefusals(t *testing.T) {
	for _, c := range RefusalCases(t) {
		err := Verify(c.Token, c.Req, c.Opts)
		if !errors.Is(err, c.Want) {
			t.Errorf("%s: got %v, want %v", c.Name, err, c.Want)
		}
	}
}

func TestVerifyAccepts(t *testing.T) {
	root, a := key(1), key(2)
	trust := VerifyOptions{Trusted: []ed25519.PublicKey{pub(key(7)), pub(root)}}
	grant := mustIssue(t, root, claims(a, ScopeSubscribe|ScopePublish, "*"))
	for _, req := range []Request{
		{Subject: pub(a), Scope: ScopeSubscribe, Channel: "x", Now: t0},
		{Subject: pub(a), Scope: ScopeSubscribe | ScopePublish, Channel: "a/b/c", Now: t0.Add(day - time.Second)},
	} {
		if err := Verify(grant, req, trust); err != nil {
			t.Errorf("%+v: %v", req, err)
		}
	}
	// A chain of HardMaxDepth verifies when asked for, and the option is capped.
	chain, holder := mustIssue(t, root, claims(a, ScopeSubscribe|ScopeDelegate, "*")), a
	for i := range HardMaxDepth - 1 {
		next := key(byte(20 + i))
		chain = mustDelegate(t, chain, holder, claims(next, ScopeSubscribe|ScopeDelegate, "*"))
		holder = next
	}
	req := Request{Subject: pub(holder), Scope: ScopeSubscribe, Channel: "x", Now: t0}
	if err := Verify(chain, req, VerifyOptions{Trusted: trust.Trusted, MaxDepth: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := Delegate(chain, holder, claims(a, ScopeSubscribe, "*")); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("delegating past the hard cap: %v", err)
	}
}

func TestDelegateRefuses(t *testing.T) {
	root, a, b := key(1), key(2), key(3)
	grant := mustIssue(t, root, claims(a, ScopeSubscribe|ScopeDelegate, "orders/*"))
	noDel := mustIssue(t, root, claims(a, ScopeSubscribe, "orders/*"))
	longer := claims(b, ScopeSubscribe, "orders/eu")
	longer.NotBefore = t0.Add(-time.Second)
	for name, c := range map[string]struct {
		parent Token
		holder ed25519.PrivateKey
		c      Claims
	}{
		"not the holder":  {grant, b, claims(b, ScopeSubscribe, "orders/eu")},
		"no delegate":     {noDel, a, claims(b, ScopeSubscribe, "orders/eu")},
		"scope widens":    {grant, a, claims(b, ScopePublish, "orders/eu")},
		"channel widens":  {grant, a, claims(b, ScopeSubscribe, "orders")},
		"starts earlier":  {grant, a, longer},
		"pattern escapes": {grant, a, claims(b, ScopeSubscribe, "ordersx/*")},
	} {
		if _, err := Delegate(c.parent, c.holder, c.c); !errors.Is(err, ErrBadDelegation) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Issue(root, Claims{Subject: pub(a), Scopes: ScopeSubscribe, Channel: "Bad", NotBefore: t0, Expiry: t0.Add(day)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad pattern issued: %v", err)
	}
	if _, err := Issue(root, Claims{Subject: pub(a), Scopes: ScopeSubscribe, Channel: "x", NotBefore: t0, Expiry: t0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty window issued: %v", err)
	}
	if _, err := Issue(root, Claims{Subject: pub(a)[:5], Scopes: ScopeSubscribe, Channel: "x", NotBefore: t0, Expiry: t0.Add(day)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short subject issued: %v", err)
	}
}

func TestPattern(t *testing.T) {
	for _, c := range []struct {
		p       Pattern
		channel string
		want    bool
	}{
		{"orders/eu", "orders/eu", true},
		{"orders/eu", "orders/eu/x", false},
		{"orders/eu", "orders", false},
		{"orders/*", "orders/eu", true},
		{"orders/*", "orders/eu/x", true},
		{"orders/*", "orders", false},
		{"orders/*", "ordersx/eu", false},
		{"*", "anything/at/all", true},
		{"*", "", false},
		{"*", "a//b", false},
	} {
		if got := c.p.Match(c.channel); got != c.want {
			t.Errorf("%q.Match(%q) = %v", c.p, c.channel, got)
		}
	}
	for _, c := range []struct {
		p, other Pattern
		want     bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/*", true},
		{"a", "a/*", false},
		{"a/b/*", "a/*", true},
		{"a/*", "a/*", true},
		{"a/*", "a/b/*", false},
		{"ab/*", "a/*", false},
		{"a/*", "a/b", false},
		{"*", "a/*", false},
		{"a/*", "*", true},
		{"*", "*", true},
	} {
		if got := c.p.Within(c.other); got != c.want {
			t.Errorf("%q.Within(%q) = %v", c.p, c.other, got)
		}
	}
	for _, bad := range []string{"", "/", "a/", "/a", "a//b", "A", "a b", "a/*/b", "*/a", "a*", "a/**", strings.Repeat("a", 256)} {
		if _, err := ParsePattern(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePattern(%q): %v", bad, err)
		}
	}
	for _, good := range []string{"*", "a", "a/*", "a.b_c-d/0/*", strings.Repeat("a", 255)} {
		if _, err := ParsePattern(good); err != nil {
			t.Errorf("ParsePattern(%q): %v", good, err)
		}
	}
	if err := ValidChannel(strings.Repeat("a", 256)); !errors.Is(err, ErrMalformed) {
		t.Errorf("long channel: %v", err)
	}
}

func TestScopeText(t *testing.T) {
	s, err := ParseScope("subscribe,publish")
	if err != nil || s != ScopeSubscribe|ScopePublish || s.String() != "publish,subscribe" {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := ParseScope("subscribe,root"); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func TestDecodeRefusals(t *testing.T) {
	root, a, b := key(1), key(2), key(3)
	grant := mustIssue(t, root, claims(a, ScopeSubscribe|ScopeDelegate, "orders/*"))
	child := mustDelegate(t, grant, a, claims(b, ScopeSubscribe, "orders/eu"))
	enc := child.Encode()
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(enc)) }
	// Offsets into the fixed header.
	const scopeAt, nbAt, expAt, plenAt = 65, 66, 74, 82
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version", mod(func(b []byte) []byte { b[0] = 2; return b }), ErrUnknownVersion},
		{"short", enc[:fixedSize-1], ErrTruncated},
		{"cut", enc[:len(enc)-1], ErrTruncated},
		{"trailing", append(bytes.Clone(enc), 0), ErrMalformed},
		{"oversize", make([]byte, MaxSize+1), ErrMalformed},
		{"no scopes", mod(func(b []byte) []byte { b[scopeAt] = 0; return b }), ErrMalformed},
		{"unknown scope bit", mod(func(b []byte) []byte { b[scopeAt] |= 0x80; return b }), ErrMalformed},
		{"empty window", mod(func(b []byte) []byte { copy(b[expAt:], b[nbAt:nbAt+8]); return b }), ErrMalformed},
		{"negative time", mod(func(b []byte) []byte { b[nbAt] = 0x80; binary.BigEndian.PutUint64(b[expAt:], ^uint64(0)); return b }), ErrMalformed},
		{"pattern length", mod(func(b []byte) []byte { b[plenAt] = 255; return b }), ErrTruncated},
		{"bad pattern", mod(func(b []byte) []byte { b[plenAt+1] = 'A'; return b }), ErrMalformed},
		{"parent length", mod(func(b []byte) []byte {
			at := plenAt + 1 + int(b[plenAt])
			binary.BigEndian.PutUint16(b[at:], 0xffff)
			return b
		}), ErrTruncated},
		{"parent version", mod(func(b []byte) []byte {
			b[plenAt+1+int(b[plenAt])+2] = 9
			return b
		}), ErrUnknownVersion},
	} {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		text string
		want error
	}{
		{"", ErrMalformed},
		{"wasmesh-token-v2:AAAA", ErrUnknownVersion},
		{TextPrefix + "!!", ErrMalformed},
		{TextPrefix + child.String()[len(TextPrefix):] + "=", ErrMalformed},
		{TextPrefix + strings.Repeat("A", 6000), ErrMalformed},
	} {
		if _, err := Parse([]byte(c.text)); !errors.Is(err, c.want) {
			t.Errorf("Parse(%.30q): got %v, want %v", c.text, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	root, a, b := key(1), key(2), key(3)
	c := func(sub ed25519.PrivateKey, s Scope, p Pattern) Claims {
		return Claims{Subject: pub(sub), Scopes: s, Channel: p, NotBefore: t0, Expiry: t0.Add(day)}
	}
	grant, _ := Issue(root, c(a, ScopeSubscribe|ScopeDelegate, "orders/*"))
	child, _ := Delegate(grant, a, c(b, ScopeSubscribe, "orders/eu"))
	f.Add(grant.Encode())
	f.Add(child.Encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, in []byte) {
		tok, err := Decode(in)
		if err != nil {
			return
		}
		if !bytes.Equal(tok.Encode(), in) {
			t.Fatalf("re-encoding differs")
		}
		if tok.Depth() > HardMaxDepth {
			t.Fatalf("depth %d decoded", tok.Depth())
		}
		again, err := Parse([]byte(tok.String()))
		if err != nil || !bytes.Equal(again.Encode(), in) {
			t.Fatalf("text form: %v", err)
		}
		// Verify must not panic on anything that decodes.
		_ = Verify(tok, Request{Subject: pub(b), Scope: ScopeSubscribe, Channel: "orders/eu", Now: t0}, VerifyOptions{Trusted: []ed25519.PublicKey{pub(root)}})
	})
}
