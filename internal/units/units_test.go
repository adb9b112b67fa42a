package units

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"1MiB": 1 << 20, "64KiB": 65536, "512": 512, "2 GiB": 2 << 30, "1kb": 1000, "3M": 3 << 20, "10B": 10}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "abc", "99999999999999999999", "9999999999GiB"} {
		if _, err := ParseSize(in); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSize(%q) error = %v, want ErrBadSize", in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{1 << 20: "1MiB", 65536: "64KiB", 100: "100B", 3 << 30: "3GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1MiB", "64KiB", "0", "18446744073709551615", "1GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n > 1<<63 {
			t.Fatalf("ParseSize(%q) = %d overflows", s, n)
		}
	})
}
