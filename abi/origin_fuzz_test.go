package abi

import (
	"strings"
	"testing"
)

// Daemon ids come from the CLI and the admin API. FormatOrigin's output
// parses back, and an accepted id is that form up to letter case.
func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"00000000000000aa", "00000000000000AA", "+0000000000000aa", "0x000000000000aa", "000000000000_0aa", "", "ffffffffffffffff"} {
		f.Add(s, uint64(0xaa))
	}
	f.Fuzz(func(t *testing.T, s string, v uint64) {
		if back, err := ParseOrigin(FormatOrigin(v)); err != nil || back != v {
			t.Fatalf("ParseOrigin(FormatOrigin(%d)) = %d, %v", v, back, err)
		}
		got, err := ParseOrigin(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(FormatOrigin(got), s) {
			t.Fatalf("ParseOrigin accepted %q as %s", s, FormatOrigin(got))
		}
	})
}
