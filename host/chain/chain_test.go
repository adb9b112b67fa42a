package chain

import (
	"crypto/sha256"
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func build(origin uint64, payloads [][]byte) []Link {
	head, hh := Genesis(origin), GenesisHash(origin)
	var out []Link
	for i, p := range payloads {
		l := Next(head, hh, uint64(i))
		out = append(out, l)
		head, hh = l, Hash(l, p)
	}
	return out
}

func TestValidatorAcceptsChainAndRejectsFaults(t *testing.T) {
	payloads := [][]byte{[]byte("a"), nil, []byte("ccc")}
	links := build(9, payloads)
	v := NewGenesisValidator(9)
	for i, l := range links {
		if err := v.Accept(l, payloads[i]); err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
	if links[0].Sequence != 1 || links[0].Parent != Hash(Genesis(9), nil) {
		t.Fatalf("first link %+v", links[0])
	}
	// Reordered.
	v = NewGenesisValidator(9)
	if err := v.Accept(links[1], payloads[1]); !errors.Is(err, ErrSequenceGap) {
		t.Fatalf("gap: %v", err)
	}
	// Forged parent with the right sequence.
	v = NewGenesisValidator(9)
	forged := links[0]
	forged.Parent[0] ^= 1
	if err := v.Accept(forged, payloads[0]); !errors.Is(err, ErrParentMismatch) {
		t.Fatalf("forged: %v", err)
	}
	// State is unchanged after a rejection.
	if err := v.Accept(links[0], payloads[0]); err != nil {
		t.Fatalf("after rejection: %v", err)
	}
}

func TestLinkEncodingRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := Link{Origin: rapid.Uint64().Draw(t, "o"), Sequence: rapid.Uint64().Draw(t, "s"), Horizon: rapid.Uint64().Draw(t, "h")}
		copy(l.Parent[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "p"))
		got, err := DecodeLink(l.AppendBinary(nil))
		if err != nil || got != l {
			t.Fatalf("round trip %+v -> %+v, %v", l, got, err)
		}
	})
	if _, err := DecodeLink(make([]byte, LinkSize-1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short link: %v", err)
	}
}

func TestHorizonDigestIsOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		obs := rapid.SliceOfN(rapid.Uint64Range(1, 8), 1, 40).Draw(t, "senders")
		a, b := NewHorizon(), NewHorizon()
		for i, s := range obs {
			a.Observe(s, uint64(i))
		}
		// Same final watermarks, fed in reverse: older sequences are ignored.
		for i := len(obs) - 1; i >= 0; i-- {
			b.Observe(obs[i], uint64(i))
		}
		if a.Digest() != b.Digest() {
			t.Fatalf("digest depends on order: %x vs %x", a.Digest(), b.Digest())
		}
		if HorizonFrom(a.Entries()).Digest() != a.Digest() {
			t.Fatal("rebuilt horizon has another digest")
		}
	})
	h := NewHorizon()
	h.Observe(1, 5)
	d := h.Digest()
	h.Observe(1, 3)
	if h.Digest() != d {
		t.Fatal("an older sequence moved the horizon")
	}
	h.Observe(1, 6)
	if h.Digest() == d {
		t.Fatal("a newer sequence did not move the horizon")
	}
}

func TestHashMatchesDefinitionForAllSizes(t *testing.T) {
	var x Hasher
	for _, n := range []int{0, 1, smallPayload, smallPayload + 1, 5000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i)
		}
		l := Link{Origin: 1, Sequence: 2, Horizon: 3}
		want := sha256.Sum256(append(l.AppendBinary(nil), p...))
		if Hash(l, p) != want || x.Hash(l, p) != want {
			t.Fatalf("Hash of %d-byte payload differs from SHA-256(link || payload)", n)
		}
	}
}
