package chanauth

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/token"
)

func key(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func entity(k ed25519.PrivateKey) (e [32]byte) {
	copy(e[:], k.Public().(ed25519.PublicKey))
	return e
}

var t0 = time.Unix(1_800_000_000, 0)

func grant(t *testing.T, iss, sub ed25519.PrivateKey, s token.Scope, p token.Pattern) token.Token {
	t.Helper()
	tok, err := token.Issue(iss, token.Claims{Subject: sub.Public().(ed25519.PublicKey), Scopes: s, Channel: p, NotBefore: t0, Expiry: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// home is a channel home with one restricted channel trusting root.
func home(t *testing.T, root ed25519.PrivateKey) *channel.Machine {
	t.Helper()
	var self channel.NodeID
	self[0] = 1
	m := channel.New(self, 1, channel.DefaultConfig(), Tokens{})
	if err := m.Create(channel.Definition{Name: "orders/eu", Restricted: true, Trusted: [][32]byte{entity(root)}}); err != nil {
		t.Fatal(err)
	}
	return m
}

func node(b byte) (n channel.NodeID) { n[0] = b; return n }

// A daemon's token names its entity id, not its node: after it migrates
// (the target re-subscribes from the ledger with the same token), the home
// accepts it again.
func TestTokenKeepsWorkingAfterMigration(t *testing.T) {
	root, daemon := key(1), key(2)
	m := home(t, root)
	tok := []byte(grant(t, root, daemon, token.ScopeSubscribe, "orders/*").String())
	now := t0.Add(time.Hour)
	id, _, err := m.Subscribe("orders/eu", channel.Subscription{Origin: 7, Entity: entity(daemon), Node: node(2), Token: tok}, now)
	if err != nil {
		t.Fatalf("subscribe with a valid token: %v", err)
	}
	again, _, err := m.Subscribe("orders/eu", channel.Subscription{Origin: 7, Entity: entity(daemon), Node: node(3), Token: tok}, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("re-subscribe from the migration target: %v", err)
	}
	if again != id {
		t.Fatalf("re-subscribe after a move got subscription %d, want the same %d", again, id)
	}
	st, err := m.Stats("orders/eu")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Subscribers) != 1 {
		t.Fatalf("subscribers = %d, want 1", len(st.Subscribers))
	}
}

// Each bad token is refused at the home with ErrNotPermitted wrapping the
// token's own reason, so a CLI can print why.
func TestRefusals(t *testing.T) {
	root, daemon, other, stranger := key(1), key(2), key(3), key(4)
	now := t0.Add(time.Hour)
	good := grant(t, root, daemon, token.ScopeSubscribe|token.ScopeDelegate, "orders/*")

	chain, holder := good, daemon
	for i := range 4 {
		next := key(byte(10 + i))
		var err error
		chain, err = token.Delegate(chain, holder, token.Claims{Subject: next.Public().(ed25519.PublicKey), Scopes: token.ScopeSubscribe | token.ScopeDelegate, Channel: "orders/*", NotBefore: t0, Expiry: t0.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		holder = next
	}
	forged := good.Encode()
	forged[len(forged)-1] ^= 1

	cases := []struct {
		name    string
		subject ed25519.PrivateKey
		tok     []byte
		at      time.Time
		want    error
	}{
		{"expired", daemon, good.Encode(), t0.Add(25 * time.Hour), token.ErrExpired},
		{"not yet valid", daemon, good.Encode(), t0.Add(-time.Minute), token.ErrNotYetValid},
		{"wrong scope", daemon, grant(t, root, daemon, token.ScopePublish, "orders/*").Encode(), now, token.ErrWrongScope},
		{"wrong channel", daemon, grant(t, root, daemon, token.ScopeSubscribe, "billing/*").Encode(), now, token.ErrWrongChannel},
		{"forged signature", daemon, forged, now, token.ErrBadSignature},
		{"truncated", daemon, good.Encode()[:40], now, token.ErrTruncated},
		{"over-deep delegation", holder, chain.Encode(), now, token.ErrTooDeep},
		{"token for another daemon", other, good.Encode(), now, token.ErrWrongSubject},
		{"untrusted issuer", daemon, grant(t, stranger, daemon, token.ScopeSubscribe, "orders/*").Encode(), now, token.ErrUntrustedIssuer},
		{"no token", daemon, nil, now, token.ErrMalformed},
	}
	for i, c := range cases {
		m := home(t, root)
		_, _, err := m.Subscribe("orders/eu", channel.Subscription{Origin: uint64(100 + i), Entity: entity(c.subject), Node: node(2), Token: c.tok}, c.at)
		if !errors.Is(err, channel.ErrNotPermitted) || !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want ErrNotPermitted wrapping %v", c.name, err, c.want)
		}
	}
}

// Publishing to a restricted channel needs the publish scope.
func TestPublishScope(t *testing.T) {
	root, pub := key(1), key(5)
	m := home(t, root)
	now := t0.Add(time.Hour)
	sub := grant(t, root, pub, token.ScopeSubscribe, "orders/eu").Encode()
	p := channel.Publication{Publisher: 9, Seq: 1, Subject: entity(pub), Token: sub, Payload: []byte("x")}
	if _, _, err := m.Publish("orders/eu", p, now); !errors.Is(err, token.ErrWrongScope) {
		t.Fatalf("publish with a subscribe-only token: %v, want ErrWrongScope", err)
	}
	p.Token = grant(t, root, pub, token.ScopePublish, "orders/eu").Encode()
	res, _, err := m.Publish("orders/eu", p, now)
	if err != nil {
		t.Fatalf("publish with a publish token: %v", err)
	}
	if res.Outcome != channel.Accepted {
		t.Fatalf("outcome = %v, want Accepted", res.Outcome)
	}
}
