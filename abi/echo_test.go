package abi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEchoEscapesAndTruncates(t *testing.T) {
	if got := Echo("a\x1b[2J\u202e"); strings.ContainsAny(got, "\x1b\u202e") {
		t.Fatalf("Echo kept a control or bidi rune: %q", got)
	}
	long := strings.Repeat("é", 600000)
	got := Echo(long)
	if len(got) > 200 || !strings.Contains(got, "(1200000 bytes)") || !utf8.ValidString(got) {
		t.Fatalf("Echo of a 1.2 MB name = %d bytes %q", len(got), got)
	}
}

func TestRefusalOfHugeImportNameIsShort(t *testing.T) {
	name := strings.Repeat("x", 1<<20)
	// (module (import "env" "<1 MiB>" (func)))
	mod := []byte("\x00asm\x01\x00\x00\x00")
	mod = append(mod, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00) // type section: () -> ()
	body := []byte{0x01, 0x03, 'e', 'n', 'v'}
	body = append(body, uleb(uint64(len(name)))...)
	body = append(body, name...)
	body = append(body, 0x00, 0x00)
	mod = append(mod, 0x02)
	mod = append(mod, uleb(uint64(len(body)))...)
	mod = append(mod, body...)
	_, err := Validate(mod)
	if err == nil {
		t.Fatal("module with a 1 MiB import name accepted")
	}
	if len(err.Error()) > 1000 {
		t.Fatalf("refusal is %d bytes long", len(err.Error()))
	}
}

func uleb(v uint64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}
