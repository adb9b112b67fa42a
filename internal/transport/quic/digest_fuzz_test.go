package meshquic

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Module digests arrive from peers and the CLI: an accepted digest is the
// 64-hex-digit form, with or without "sha256:", up to letter case.
func FuzzParseDigest(f *testing.F) {
	d := strings.Repeat("ab", 32)
	for _, s := range []string{d, "sha256:" + d, "sha256:" + strings.ToUpper(d), "sha256:sha256:" + d, "md5:" + d, "", d[:62]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, ErrBadDigest) {
				t.Fatalf("error %v is not ErrBadDigest", err)
			}
			return
		}
		h := hex.EncodeToString(got[:])
		if !strings.EqualFold(h, s) && !strings.EqualFold("sha256:"+h, s) {
			t.Fatalf("ParseDigest accepted %q as %s", s, h)
		}
	})
}
