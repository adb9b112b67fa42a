// Package units parses the sizes operators type: "1MiB", "64KiB", "512".
package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadSize reports an unparseable size.
var ErrBadSize = errors.New("units: bad size")

var suffixes = []struct {
	s string
	m uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize parses a byte size with an optional binary (KiB, MiB, GiB) or
// decimal (KB, MB, GB) suffix; plain numbers are bytes.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, suf := range suffixes {
		if strings.HasSuffix(strings.ToLower(t), strings.ToLower(suf.s)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(suf.s)]), suf.m
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || t == "" {
		return 0, fmt.Errorf("%w: %q (examples: 1MiB, 64KiB, 1048576)", ErrBadSize, s)
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("%w: %q is too large", ErrBadSize, s)
	}
	return n * mult, nil
}

// FormatSize renders bytes with a binary suffix.
func FormatSize(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
