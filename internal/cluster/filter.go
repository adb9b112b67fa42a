package cluster

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidFilter is wrapped by every error about a malformed filter.
var ErrInvalidFilter = errors.New("cluster: invalid filter")

// Filter is a daemon kind's placement requirement. All parts must hold (AND);
// the zero Filter matches every node.
type Filter struct {
	// RequireTags must each be offered, as a tag or as a value key.
	RequireTags []string
	// Equal maps a key to the exact value the node must announce.
	Equal map[string]string
	// Min maps a key to a lower bound; the node's value must parse as a
	// number and be >= the bound. A missing or non-numeric value fails.
	Min map[string]float64
}

// ParseFilter parses the comma-separated syntax used on the CLI and in daemon
// kind declarations:
//
//	gpu                required tag
//	zone=eu-1          exact value
//	memory_gb>=32      numeric minimum
//
// e.g. "gpu,zone=eu-1,memory_gb>=32". Whitespace around items is ignored; an
// empty string is the empty filter. A key constrained twice is an error, since
// the second constraint would silently override or contradict the first.
func ParseFilter(s string) (Filter, error) {
	var f Filter
	constrained := make(map[string]bool)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		// Names cannot contain '=', '<' or '>', so the first of them starts
		// the operator.
		opAt := strings.IndexAny(item, "=<>!")
		if opAt < 0 {
			if err := validName(item); err != nil {
				return Filter{}, fmt.Errorf("%w: tag %q: %w", ErrInvalidFilter, item, err)
			}
			if !slices.Contains(f.RequireTags, item) {
				f.RequireTags = append(f.RequireTags, item)
			}
			continue
		}
		key := strings.TrimSpace(item[:opAt])
		rest := item[opAt:]
		if err := validName(key); err != nil {
			return Filter{}, fmt.Errorf("%w: key in %q: %w", ErrInvalidFilter, item, err)
		}
		if constrained[key] {
			return Filter{}, fmt.Errorf("%w: key %q constrained twice", ErrInvalidFilter, key)
		}
		constrained[key] = true
		switch {
		case strings.HasPrefix(rest, ">="):
			raw := strings.TrimSpace(rest[2:])
			v, err := parseBound(raw)
			if err != nil {
				return Filter{}, fmt.Errorf("%w: minimum of %q: %w", ErrInvalidFilter, key, err)
			}
			if f.Min == nil {
				f.Min = make(map[string]float64)
			}
			f.Min[key] = v
		case strings.HasPrefix(rest, "=") && !strings.HasPrefix(rest, "=="):
			v := strings.TrimSpace(rest[1:])
			if strings.ContainsAny(v[:min(1, len(v))], "<>=!") {
				// "memory_gb=>32" is a typo for ">=", not a wish for the
				// literal value ">32"; refuse rather than never match.
				return Filter{}, fmt.Errorf("%w: %q: value starts with an operator (did you mean key>=number?)", ErrInvalidFilter, item)
			}
			if err := validValue(v); err != nil {
				return Filter{}, fmt.Errorf("%w: value of %q: %w", ErrInvalidFilter, key, err)
			}
			if f.Equal == nil {
				f.Equal = make(map[string]string)
			}
			f.Equal[key] = v
		default:
			return Filter{}, fmt.Errorf("%w: %q: unsupported operator (use tag, key=value or key>=number)", ErrInvalidFilter, item)
		}
	}
	slices.Sort(f.RequireTags)
	return f, nil
}

func parseBound(raw string) (float64, error) {
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", raw)
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not finite", raw)
	}
	return v, nil
}

// Validate checks that names and values are well-formed and bounds finite.
// A NaN bound would make every comparison false and the failure message
// meaningless, so it is refused up front.
func (f Filter) Validate() error {
	for _, t := range f.RequireTags {
		if err := validName(t); err != nil {
			return fmt.Errorf("%w: tag %q: %w", ErrInvalidFilter, t, err)
		}
	}
	for k, v := range f.Equal {
		if err := validName(k); err != nil {
			return fmt.Errorf("%w: key %q: %w", ErrInvalidFilter, k, err)
		}
		if err := validValue(v); err != nil {
			return fmt.Errorf("%w: value of %q: %w", ErrInvalidFilter, k, err)
		}
	}
	for k, v := range f.Min {
		if err := validName(k); err != nil {
			return fmt.Errorf("%w: key %q: %w", ErrInvalidFilter, k, err)
		}
		if _, both := f.Equal[k]; both {
			return fmt.Errorf("%w: key %q has both an exact value and a minimum", ErrInvalidFilter, k)
		}
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return fmt.Errorf("%w: minimum of %q is not finite", ErrInvalidFilter, k)
		}
	}
	return nil
}

// IsZero reports whether the filter has no requirement at all.
func (f Filter) IsZero() bool {
	return len(f.RequireTags) == 0 && len(f.Equal) == 0 && len(f.Min) == 0
}

// Match reports whether c satisfies every requirement.
func (f Filter) Match(c Capabilities) bool {
	for _, t := range f.RequireTags {
		if !c.Has(t) {
			return false
		}
	}
	for k, want := range f.Equal {
		if got, ok := c.Values[k]; !ok || got != want {
			return false
		}
	}
	for k, lo := range f.Min {
		if !meetsMin(c, k, lo) {
			return false
		}
	}
	return true
}

// Unmet lists, in the String syntax and sorted, each requirement c fails.
// It is how scheduling errors explain themselves.
func (f Filter) Unmet(c Capabilities) []string {
	var out []string
	for _, t := range f.RequireTags {
		if !c.Has(t) {
			out = append(out, t)
		}
	}
	for k, want := range f.Equal {
		if got, ok := c.Values[k]; !ok || got != want {
			out = append(out, k+"="+want)
		}
	}
	for k, lo := range f.Min {
		if !meetsMin(c, k, lo) {
			out = append(out, k+">="+formatBound(lo))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func meetsMin(c Capabilities, key string, lo float64) bool {
	raw, ok := c.Values[key]
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(v) {
		return false
	}
	return v >= lo
}

func formatBound(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// String renders the filter in ParseFilter syntax with a stable order: tags,
// then exact values, then minimums, each sorted by key.
func (f Filter) String() string {
	tags := slices.Clone(f.RequireTags)
	slices.Sort(tags)
	parts := slices.Compact(tags)
	for _, k := range slices.Sorted(maps.Keys(f.Equal)) {
		parts = append(parts, k+"="+f.Equal[k])
	}
	for _, k := range slices.Sorted(maps.Keys(f.Min)) {
		parts = append(parts, k+">="+formatBound(f.Min[k]))
	}
	return strings.Join(parts, ",")
}
