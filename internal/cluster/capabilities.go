package cluster

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrInvalidCapabilities is wrapped by every error about a malformed
// capability set (bad name, bad value, duplicate key, too many entries).
var ErrInvalidCapabilities = errors.New("cluster: invalid capabilities")

// Limits on announced capabilities. They exist because the whole NodeMeta has
// to fit memberlist's 512-byte metadata budget; a clear error at announce time
// beats a silently truncated announcement.
const (
	MaxNameLen      = 63
	MaxValueLen     = 127
	MaxCapabilities = 64 // tags plus values
)

// Capabilities is what a node announces it can offer: bare tags ("gpu") and
// key=value metadata ("zone=eu-1", "memory_gb=64").
//
// A tag requirement is also satisfied by a value with the same key, so a node
// announcing "gpu=a100" satisfies a filter that requires "gpu".
type Capabilities struct {
	Tags   []string          // sorted, unique after Normalize
	Values map[string]string // key -> value
}

// ParseCapabilities parses CLI-style items. Each item may itself be a
// comma-separated list, so both `--cap gpu --cap zone=eu-1` and
// `--caps gpu,zone=eu-1` produce the same set. An empty input is an empty set.
func ParseCapabilities(items ...string) (Capabilities, error) {
	var c Capabilities
	for _, item := range items {
		for part := range strings.SplitSeq(item, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			key, value, isKV := strings.Cut(part, "=")
			if !isKV {
				if err := validName(part); err != nil {
					return Capabilities{}, fmt.Errorf("%w: tag %q: %w", ErrInvalidCapabilities, part, err)
				}
				c.Tags = append(c.Tags, part)
				continue
			}
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			if err := validName(key); err != nil {
				return Capabilities{}, fmt.Errorf("%w: key %q: %w", ErrInvalidCapabilities, key, err)
			}
			if err := validValue(value); err != nil {
				return Capabilities{}, fmt.Errorf("%w: value of %q: %w", ErrInvalidCapabilities, key, err)
			}
			if c.Values == nil {
				c.Values = make(map[string]string)
			}
			if old, dup := c.Values[key]; dup && old != value {
				// Two different values for one key is almost certainly an
				// operator typo; picking one silently would mis-place daemons.
				return Capabilities{}, fmt.Errorf("%w: key %q given twice (%q, %q)", ErrInvalidCapabilities, key, old, value)
			}
			c.Values[key] = value
		}
	}
	c = c.Normalize()
	if err := c.Validate(); err != nil {
		return Capabilities{}, err
	}
	return c, nil
}

// Normalize returns a copy with sorted, de-duplicated tags and a copied value
// map, so callers can keep mutating their input and equal sets compare equal.
func (c Capabilities) Normalize() Capabilities {
	var out Capabilities
	if len(c.Tags) > 0 {
		out.Tags = slices.Clone(c.Tags)
		slices.Sort(out.Tags)
		out.Tags = slices.Compact(out.Tags)
	}
	if len(c.Values) > 0 {
		out.Values = maps.Clone(c.Values)
	}
	return out
}

// Validate checks names, values and the entry count.
func (c Capabilities) Validate() error {
	if n := len(c.Tags) + len(c.Values); n > MaxCapabilities {
		return fmt.Errorf("%w: %d entries, at most %d", ErrInvalidCapabilities, n, MaxCapabilities)
	}
	for _, t := range c.Tags {
		if err := validName(t); err != nil {
			return fmt.Errorf("%w: tag %q: %w", ErrInvalidCapabilities, t, err)
		}
	}
	for k, v := range c.Values {
		if err := validName(k); err != nil {
			return fmt.Errorf("%w: key %q: %w", ErrInvalidCapabilities, k, err)
		}
		if err := validValue(v); err != nil {
			return fmt.Errorf("%w: value of %q: %w", ErrInvalidCapabilities, k, err)
		}
	}
	return nil
}

// Has reports whether the node offers tag, either as a bare tag or as the key
// of a value.
func (c Capabilities) Has(tag string) bool {
	if _, ok := c.Values[tag]; ok {
		return true
	}
	return slices.Contains(c.Tags, tag)
}

// Value returns the value announced for key.
func (c Capabilities) Value(key string) (string, bool) {
	v, ok := c.Values[key]
	return v, ok
}

// Equal reports whether two sets hold the same tags and values, ignoring order
// and duplicate tags.
func (c Capabilities) Equal(o Capabilities) bool {
	a, b := c.Normalize(), o.Normalize()
	return slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Values, b.Values)
}

// String renders the set in the syntax ParseCapabilities accepts, sorted so the
// output is stable (logs, golden tests, CLI listings).
func (c Capabilities) String() string {
	n := c.Normalize()
	parts := slices.Clone(n.Tags)
	for _, k := range slices.Sorted(maps.Keys(n.Values)) {
		parts = append(parts, k+"="+n.Values[k])
	}
	return strings.Join(parts, ",")
}

// validName accepts the restricted alphabet shared by tags, value keys and
// filter keys. Keeping '=', '<', '>', ',' and spaces out of names is what lets
// the filter syntax be parsed without quoting.
func validName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("name longer than %d bytes", MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_':
		case (b == '-' || b == '.' || b == '/' || b == ':') && i > 0:
		default:
			return fmt.Errorf("character %q not allowed at %d (use letters, digits, _ and, after the first, - . / :)", b, i)
		}
	}
	return nil
}

// validValue rejects separators and whitespace, which would make the CLI and
// filter syntax ambiguous, and control bytes, which do not belong in logs.
func validValue(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	if len(s) > MaxValueLen {
		return fmt.Errorf("value longer than %d bytes", MaxValueLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b == 0x7f || b == ',' {
			return fmt.Errorf("byte %q not allowed in a value", b)
		}
	}
	return nil
}
