package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTermSafe(t *testing.T) {
	cases := map[string]string{
		"plain name-1.x":   "plain name-1.x",
		"a\x1b[2J\x1b[31m": `a\x1b[2J\x1b[31m`,
		"nul\x00":          `nul\x00`,
		"rtl\u202eevil":    `rtl\u202eevil`,
		"c1\u009b":         `c1\u009b`,
		"bad\xffutf8":      `bad\xffutf8`,
		"tab\there":        `tab\there`,
		`back\slash`:       `back\\slash`,
		"two\nlines":       `two\nlines`,
		"héllo 日本":         "héllo 日本",
	}
	for in, want := range cases {
		if got := termSafe(in, false); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
	if got := termSafe("a\nb\x1b", true); got != "a\nb\\x1b" {
		t.Errorf("termSafe keepNewline = %q", got)
	}
	for _, r := range []rune{0x1b, 0x07, 0x9b, 0x202e, 0x2066, 0x200f} {
		if strings.ContainsRune(termSafe("x"+string(r), true), r) {
			t.Errorf("rune %U passed through", r)
		}
	}
}

func TestRunEscapesGuestLogLines(t *testing.T) {
	r := wm(t, "x\n", "run", examplePath("testdata", "logesc.wasm"))
	if r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("run logesc: %+v", r)
	}
	if strings.ContainsAny(r.stderr, "\x1b\x07\u009b\u202e") || !strings.Contains(r.stderr, `x\x1b[2J\x1b[31mred\a\u009b\u202eevil`) {
		t.Fatalf("guest log line not escaped: %q", r.stderr)
	}
}

func FuzzTermSafe(f *testing.F) {
	for _, s := range []string{"", "plain", "a\x1b[2J", "\u202e", "\xff\xfe", "a\nb\\c", "\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []bool{false, true} {
			out := termSafe(s, keep)
			if !utf8.ValidString(out) {
				t.Fatalf("termSafe(%q) = %q: invalid UTF-8", s, out)
			}
			for _, r := range out {
				if !safeRune(r, keep) && r != '\\' {
					t.Fatalf("termSafe(%q, %v) = %q keeps %U", s, keep, out, r)
				}
			}
		}
	})
}
