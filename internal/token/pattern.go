package token

import (
	"fmt"
	"strings"
)

// MaxChannel bounds a channel name (and a pattern) in bytes; it fits the
// one-byte length the encoding gives a pattern.
const MaxChannel = 255

// ValidChannel reports whether name is a channel name: '/'-separated,
// non-empty segments of [a-z0-9._-], at most MaxChannel bytes. Names are
// restricted so that a pattern can never be confused with a name and so
// that two spellings never denote the same channel.
func ValidChannel(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty channel name", ErrMalformed)
	}
	if len(name) > MaxChannel {
		return fmt.Errorf("%w: channel name is %d bytes, at most %d", ErrMalformed, len(name), MaxChannel)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" {
			return fmt.Errorf("%w: channel name %q has an empty segment", ErrMalformed, name)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: channel name %q: byte %q is not one of [a-z0-9._-]", ErrMalformed, name, c)
			}
		}
	}
	return nil
}

// Pattern names the channels a token covers: an exact name ("orders/eu"),
// a prefix ending in "/*" that matches one or more further segments
// ("orders/*" covers "orders/eu" and "orders/eu/x" but not "orders"), or
// "*" for every channel. Build one with ParsePattern.
type Pattern string

// All matches every channel.
const All Pattern = "*"

// ParsePattern validates s as a Pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == string(All) {
		return All, nil
	}
	if len(s) > MaxChannel {
		return "", fmt.Errorf("%w: channel pattern is %d bytes, at most %d", ErrMalformed, len(s), MaxChannel)
	}
	base := s
	if p, ok := strings.CutSuffix(s, "/*"); ok {
		base = p
	}
	if err := ValidChannel(base); err != nil {
		return "", fmt.Errorf("channel pattern %q: %w", s, err)
	}
	return Pattern(s), nil
}

// prefix returns the part before "/*" of a prefix pattern.
func (p Pattern) prefix() (string, bool) {
	return strings.CutSuffix(string(p), "/*")
}

// Match reports whether channel is one p covers; an invalid channel name
// matches nothing.
func (p Pattern) Match(channel string) bool {
	if ValidChannel(channel) != nil {
		return false
	}
	if p == All {
		return true
	}
	if base, ok := p.prefix(); ok {
		return strings.HasPrefix(channel, base+"/")
	}
	return string(p) == channel
}

// Within reports whether every channel p matches is also matched by other,
// which is what a delegated token's pattern must satisfy against its
// parent's.
func (p Pattern) Within(other Pattern) bool {
	if other == All {
		return true
	}
	if p == All {
		return false
	}
	ob, oprefix := other.prefix()
	if !oprefix {
		return p == other
	}
	if pb, ok := p.prefix(); ok {
		return pb == ob || strings.HasPrefix(pb, ob+"/")
	}
	return other.Match(string(p))
}

func (p Pattern) String() string { return string(p) }
