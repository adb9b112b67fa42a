package abi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidate: Inspect and Validate never panic, agree with each other, and
// every refusal names an item.
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.wasm")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) <= 64<<10 {
			f.Add(b)
		}
	}
	g := good()
	f.Add(g.build())
	g.funcs[ExportStart] = Signature{}
	g.mems = append(g.mems, g.mems[0])
	f.Add(g.build())
	// Shape bombs (abi/limits.go): each must be refused, cheaply.
	f.Add(localsBomb(f, 100_000_000))
	for _, name := range []string{"locals_bomb", "table_bomb", "random_bomb"} {
		if b, err := os.ReadFile("../plugins/examples/testdata/" + name + ".wasm"); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, ierr := Inspect(b)
		vinfo, verr := Validate(b)
		if ierr != nil {
			if info != nil || vinfo != nil || !errors.Is(verr, ErrRefused) {
				t.Fatalf("unparseable: Inspect %v, Validate %v %v", ierr, vinfo, verr)
			}
			return
		}
		if !strings.HasPrefix(info.Digest, "sha256:") || len(info.Digest) != 7+64 {
			t.Fatalf("digest %q", info.Digest)
		}
		if (len(info.Problems) == 0) != (verr == nil) {
			t.Fatalf("%d problems but Validate error %v", len(info.Problems), verr)
		}
		if verr != nil && !errors.Is(verr, ErrRefused) {
			t.Fatalf("refusal not ErrRefused: %v", verr)
		}
		for _, p := range info.Problems {
			if p.Item == "" || p.Reason == "" {
				t.Fatalf("problem without item or reason: %+v", p)
			}
		}
	})
}
