package node

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "counter", "Echo-2", "v1.2_x", "9lives", strings.Repeat("a", 64)} {
		if err := CheckName("daemon", ok); err != nil {
			t.Errorf("CheckName(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", ".x", "_x", "a b", "a/b", "a\x1b[2J", "a\x00", "a\u202eb", "é", "a:b", strings.Repeat("a", 65)} {
		err := CheckName("daemon", bad)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("CheckName(%q) = %v, want ErrBadRequest", bad, err)
			continue
		}
		if strings.ContainsAny(err.Error(), "\x1b\x00\u202e") {
			t.Errorf("refusal of %q echoes a control rune: %q", bad, err)
		}
	}
}

func TestValidNameKeepsEmptyAndRefusesIDs(t *testing.T) {
	if err := validName(""); err != nil {
		t.Fatalf("empty name (unnamed daemon) refused: %v", err)
	}
	if err := validName("0123456789abcdef"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("id-shaped name accepted: %v", err)
	}
	if err := validName("x\x1b[31m"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("name with ESC accepted: %v", err)
	}
}

func TestRefusalOfHugeNameIsShort(t *testing.T) {
	huge := strings.Repeat("\x1b", 1<<20)
	for _, err := range []error{CheckName("kind", huge), validName(huge)} {
		if err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "(1048576 bytes)") {
			t.Fatalf("refusal of a 1 MiB name: %d bytes", len(err.Error()))
		}
	}
}
