package abi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// FuzzValidate: Inspect and Validate never panic, agree with each other,
// every refusal names an item and stays short, and nothing over a shape
// limit (abi/limits.go) is accepted.
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
	f.Add(localsBomb(f, MaxLocalsPerFunc-8)) // just under: accepted
	f.Add(reshape(f, func(m *wasmbin.Module) []wasmbin.Section {
		return wasmbin.SetSection(m.Sections, wasmbin.TableSection([]wasmbin.TableType{{Elem: wasmbin.FuncRef, Limits: wasmbin.Limits{Min: MaxTableInit + 1}}}))
	}))
	f.Add(reshape(f, func(m *wasmbin.Module) []wasmbin.Section {
		ex := append(append([]wasmbin.Export(nil), m.Exports...), wasmbin.Export{Name: strings.Repeat("x", MaxNameBytes+1), Kind: wasmbin.KindFunc, Index: 0})
		return wasmbin.SetSection(m.Sections, wasmbin.ExportSection(ex))
	}))
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
			// A refusal echoes what it refuses clipped: never the
			// input's own size.
			if len(p.Item)+len(p.Reason) > 400 {
				t.Fatalf("problem of %d bytes", len(p.Item)+len(p.Reason))
			}
		}
		if verr == nil {
			if over := shapeOver(t, b); over != "" {
				t.Fatalf("accepted a module over a shape limit: %s", over)
			}
		}
	})
}

// shapeOver is the fuzzer's own reading of abi/limits.go, counted from the
// parsed module independently of the validator: the first limit b is over,
// or "".
func shapeOver(t *testing.T, b []byte) string {
	m, err := wasmbin.Parse(b)
	if err != nil {
		t.Fatalf("Validate accepted what wasmbin cannot parse: %v", err)
	}
	var locals, code, elems, data uint64
	for i, c := range m.Codes {
		n := uint64(0)
		if i < len(m.Funcs) && int(m.Funcs[i]) < len(m.Types) {
			n = uint64(len(m.Types[m.Funcs[i]].Params))
		}
		for _, l := range c.Locals {
			n += uint64(l.Count)
		}
		if n > MaxLocalsPerFunc || len(c.Raw) > MaxFuncBodyBytes {
			return fmt.Sprintf("function %d: %d locals, %d bytes", i, n, len(c.Raw))
		}
		locals += n
		code += uint64(len(c.Raw))
	}
	for _, e := range m.Elements {
		elems += uint64(e.Count)
	}
	for _, d := range m.Data {
		data += uint64(len(d.Init))
	}
	for _, tb := range m.Tables {
		if tb.Limits.Min > MaxTableInit {
			return fmt.Sprintf("table of %d entries", tb.Limits.Min)
		}
	}
	for _, im := range m.Imports {
		if len(im.Module) > MaxNameBytes || len(im.Name) > MaxNameBytes {
			return "import name"
		}
	}
	for _, e := range m.Exports {
		if len(e.Name) > MaxNameBytes {
			return "export name"
		}
	}
	for _, c := range []struct {
		what   string
		n, max uint64
	}{
		{"locals in all", locals, MaxLocalsTotal},
		{"code bytes", code, MaxCodeBytes},
		{"functions", uint64(m.NumFuncs()), MaxFunctions},
		{"types", uint64(len(m.Types)), MaxTypes},
		{"globals", uint64(m.NumGlobals()), MaxGlobals},
		{"tables", uint64(m.NumTables()), MaxTables},
		{"element segments", uint64(len(m.Elements)), MaxElemSegments},
		{"element entries", elems, MaxElemEntries},
		{"data segments", uint64(len(m.Data)), MaxDataSegments},
		{"data bytes", data, MaxDataBytes},
		{"imports", uint64(len(m.Imports)), MaxImportsExports},
		{"exports", uint64(len(m.Exports)), MaxImportsExports},
	} {
		if c.n > c.max {
			return fmt.Sprintf("%s: %d > %d", c.what, c.n, c.max)
		}
	}
	return ""
}
