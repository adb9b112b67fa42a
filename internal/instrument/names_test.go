package instrument

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// TestNameSectionKept: a trap in the instrumented module names the guest's
// functions in wazero's stack trace, as in the original; original indices
// keep their names and the appended functions get distinct reserved ones.
func TestNameSectionKept(t *testing.T) {
	orig := readFile(t, "testdata/names.wasm")
	res := mustInstrument(t, orig, Options{})
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			r := newRuntime(t, e.cfg())
			for _, bin := range [][]byte{orig, res.Module} {
				m := instantiate(t, r, bin, "")
				_, err := m.ExportedFunction("outer").Call(context.Background(), 1)
				if err == nil {
					t.Fatal("no trap")
				}
				msg := err.Error()
				i, j := strings.Index(msg, "guest.explode(i32)"), strings.Index(msg, "guest.outer(i32)")
				if i < 0 || j < i {
					t.Fatalf("trace does not name explode then outer:\n%s", msg)
				}
				m.Close(context.Background())
			}
		})
	}

	m, _ := wasmbin.Parse(res.Module)
	var data []byte
	for _, c := range m.Customs {
		if c.Name == "name" {
			data = c.Data
		}
	}
	names, err := wasmbin.DecodeNames(data)
	if err != nil {
		t.Fatalf("instrumented name section: %v", err)
	}
	// explode is a leaf no call_indirect reaches: it has no entry check,
	// so no $reenter (see bounded.go).
	want := map[uint32]string{0: "explode", 1: "outer", 2: "__wasmesh_yield", 3: "__wasmesh_reenter_outer"}
	if len(names.Funcs) != len(want) {
		t.Fatalf("function names %v", names.Funcs)
	}
	for _, a := range names.Funcs {
		if want[a.Index] != a.Name {
			t.Errorf("function %d named %q, want %q", a.Index, a.Name, want[a.Index])
		}
	}
	if !names.HasModule || names.Module != "guest" || len(names.Locals) != 2 || names.Locals[0].Names[0].Name != "why" {
		t.Errorf("module or local names lost: %+v", names)
	}
}

// TestNameSectionClashAndJunk: appended names never repeat a guest's name,
// names of indices the original lacks are dropped (they would name an
// appended function), and an undecodable name section is dropped whole, so
// wazero still compiles the result.
func TestNameSectionClashAndJunk(t *testing.T) {
	build := func(names []byte) []byte {
		return wasmbin.Encode([]wasmbin.Section{
			wasmbin.TypeSection([]wasmbin.FuncType{{}}),
			wasmbin.FunctionSection([]uint32{0}),
			// Exported, so it keeps its entry check and gets a $reenter
			// to name (see bounded.go).
			wasmbin.ExportSection([]wasmbin.Export{{Name: "f", Kind: wasmbin.KindFunc}}),
			wasmbin.CodeSection([]wasmbin.Code{{Body: []byte{wasmbin.OpEnd}}}),
			wasmbin.CustomSection("name", names),
		})
	}
	clash := (&wasmbin.Names{Funcs: []wasmbin.NameAssoc{{Index: 0, Name: "__wasmesh_yield"}, {Index: 1, Name: "stray"}, {Index: 7, Name: "x"}}}).Encode()
	res := mustInstrument(t, build(clash), Options{})
	m, _ := wasmbin.Parse(res.Module)
	names, err := wasmbin.DecodeNames(m.Customs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range names.Funcs {
		if seen[a.Name] {
			t.Errorf("name %q used twice: %v", a.Name, names.Funcs)
		}
		seen[a.Name] = true
		if a.Name == "stray" || a.Name == "x" || a.Index > 2 {
			t.Errorf("kept %v", a)
		}
	}
	if len(names.Funcs) != 3 || names.Funcs[0].Name != "__wasmesh_yield" {
		t.Errorf("function names %v", names.Funcs)
	}
	r := newRuntime(t, engines[0].cfg())
	for _, junk := range [][]byte{{1, 5, 1, 0}, {1, 1, 9}, {0, 2, 1, 0xff}, {2, 0, 1, 0}} {
		res := mustInstrument(t, build(junk), Options{})
		m, _ := wasmbin.Parse(res.Module)
		if len(m.Customs) != 0 {
			t.Errorf("junk name section % x kept", junk)
		}
		if _, err := r.CompileModule(context.Background(), res.Module); err != nil {
			t.Errorf("junk name section % x: %v", junk, err)
		}
	}
}
