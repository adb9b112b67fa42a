package abi

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// reshape parses a good module and replaces sections, so each test breaks
// exactly one limit of an otherwise deployable module.
func reshape(t testing.TB, edit func(m *wasmbin.Module) []wasmbin.Section) []byte {
	t.Helper()
	m, err := wasmbin.Parse(good().build())
	if err != nil {
		t.Fatal(err)
	}
	return wasmbin.Encode(edit(m))
}

// localsBomb is a good module whose first function also declares n i32
// locals: a few bytes that would cost the compiler gigabytes.
func localsBomb(t testing.TB, n uint32) []byte {
	return reshape(t, func(m *wasmbin.Module) []wasmbin.Section {
		codes := append([]wasmbin.Code(nil), m.Codes...)
		codes[0].Locals = append(codes[0].Locals, wasmbin.LocalDecl{Count: n, Type: wasmbin.I32})
		return wasmbin.SetSection(m.Sections, wasmbin.CodeSection(codes))
	})
}

func wantRefusal(t *testing.T, module []byte, item, reason string) {
	t.Helper()
	_, err := Validate(module)
	var re *RefusalError
	if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
		t.Fatalf("Validate: %v, want a refusal", err)
	}
	for _, p := range re.Problems {
		if p.Item == item && strings.Contains(p.Reason, reason) {
			return
		}
	}
	t.Fatalf("problems %v, want %s: …%s…", re.Problems, item, reason)
}

func TestLocalsLimit(t *testing.T) {
	if _, err := Validate(localsBomb(t, MaxLocalsPerFunc-8)); err != nil {
		t.Fatalf("a function just under the locals limit was refused: %v", err)
	}
	wantRefusal(t, localsBomb(t, 100_000_000), "function 0", "the limit is 50000")
	// The committed 123-byte fixture from the security review.
	b := readTestdata(t, "../../plugins/examples/testdata/locals_bomb.wasm")
	if len(b) != 123 {
		t.Fatalf("locals_bomb.wasm is %d bytes", len(b))
	}
	wantRefusal(t, b, "function 2", "100000004 locals")
}

func TestShapeLimits(t *testing.T) {
	t.Run("locals in all functions", func(t *testing.T) {
		// 100 functions of 45,000 locals: each under the per-function
		// limit, together over the module's.
		b := reshape(t, func(m *wasmbin.Module) []wasmbin.Section {
			funcs := append([]uint32(nil), m.Funcs...)
			codes := append([]wasmbin.Code(nil), m.Codes...)
			for i := 0; i < 100; i++ {
				funcs = append(funcs, m.Funcs[0])
				c := m.Codes[0]
				c.Locals = []wasmbin.LocalDecl{{Count: 45_000, Type: wasmbin.I64}}
				codes = append(codes, c)
			}
			s := wasmbin.SetSection(m.Sections, wasmbin.FunctionSection(funcs))
			return wasmbin.SetSection(s, wasmbin.CodeSection(codes))
		})
		wantRefusal(t, b, "code section", "locals in all functions, the limit is 4000000")
	})
	t.Run("table initial size", func(t *testing.T) {
		b := reshape(t, func(m *wasmbin.Module) []wasmbin.Section {
			return wasmbin.SetSection(m.Sections, wasmbin.TableSection([]wasmbin.TableType{{Elem: wasmbin.FuncRef, Limits: wasmbin.Limits{Min: MaxTableInit + 1}}}))
		})
		wantRefusal(t, b, "table 0", "initial size of 10000001 entries")
	})
	t.Run("tables", func(t *testing.T) {
		b := reshape(t, func(m *wasmbin.Module) []wasmbin.Section {
			tables := make([]wasmbin.TableType, MaxTables+1)
			for i := range tables {
				tables[i].Elem = wasmbin.FuncRef
			}
			return wasmbin.SetSection(m.Sections, wasmbin.TableSection(tables))
		})
		wantRefusal(t, b, "table section", "101 declared")
	})
	t.Run("data bytes", func(t *testing.T) {
		b := reshape(t, func(m *wasmbin.Module) []wasmbin.Section {
			d := wasmbin.Data{Mode: wasmbin.ModePassive, Init: make([]byte, MaxDataBytes/2+1)}
			return wasmbin.SetSection(m.Sections, wasmbin.DataSection([]wasmbin.Data{d, d}))
		})
		wantRefusal(t, b, "data section", "67108866 bytes in all segments")
	})
	t.Run("export name", func(t *testing.T) {
		b := reshape(t, func(m *wasmbin.Module) []wasmbin.Section {
			ex := append(append([]wasmbin.Export(nil), m.Exports...), wasmbin.Export{Name: strings.Repeat("x", 1<<20), Kind: wasmbin.KindFunc, Index: 0})
			return wasmbin.SetSection(m.Sections, wasmbin.ExportSection(ex))
		})
		_, err := Validate(b)
		wantRefusal(t, b, "export \""+strings.Repeat("x", 64)+"\"…(1048576 bytes)", "name longer than 1024 bytes")
		if len(err.Error()) > 400 {
			t.Fatalf("refusal of a 1 MB name is %d bytes long", len(err.Error()))
		}
	})
}
