package wasmbin

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics; whatever it accepts re-encodes byte for
// byte, and every accepted body decodes instruction by instruction to its
// final end.
func FuzzParse(f *testing.F) {
	for name, b := range testdata(f) {
		if len(b) <= 64<<10 { // the fuzzer mutates small inputs well
			f.Add(b)
		} else {
			_ = name
		}
	}
	f.Add(small(FuncType{}, body(OpLoop, 0x40, OpBr, 0, OpEnd)))
	f.Add(small(FuncType{Results: []ValType{I32}}, body(OpI32Const, 1, OpBlock, 0x7f, OpI32Const, 2, OpEnd, OpI32Add)))
	f.Add(Encode([]Section{MemorySection([]Limits{{Min: 1, Max: 2, HasMax: true, Shared: true}, {Min: 1 << 40, Memory64: true}})}))
	// Shape bombs: 100M locals in a few bytes, a 64M-entry table.
	f.Add(Encode([]Section{TypeSection([]FuncType{{}}), FunctionSection([]uint32{0}),
		CodeSection([]Code{{Locals: []LocalDecl{{Count: 100_000_000, Type: I32}}, Body: []byte{OpEnd}}})}))
	f.Add(Encode([]Section{TableSection([]TableType{{Elem: FuncRef, Limits: Limits{Min: 64 << 20}}})}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatal("re-encoding an accepted module changed it")
		}
		for i, c := range m.Codes {
			off := 0
			for off < len(c.Body) {
				in, err := DecodeInstr(c.Body, off)
				if err != nil {
					t.Fatalf("body %d accepted by Parse fails to decode at %d: %v", i, off, err)
				}
				off = in.End
			}
			if c.Body[len(c.Body)-1] != OpEnd {
				t.Fatalf("body %d does not end with end", i)
			}
		}
		if _, err := Parse(Encode(SetSection(m.Sections, CodeSection(m.Codes)))); err != nil {
			t.Fatalf("rebuilt code section does not parse: %v", err)
		}
	})
}

// FuzzDecodeNames: DecodeNames never panics, and what it accepts encodes to
// bytes it decodes to the same names.
func FuzzDecodeNames(f *testing.F) {
	f.Add((&Names{Module: "m", HasModule: true, Funcs: []NameAssoc{{0, "f"}, {3, "g"}},
		Locals: []IndirectNameAssoc{{0, []NameAssoc{{1, "x"}}}}, Other: []NameSubsection{{7, []byte{1, 0, 1, 'g'}}}}).Encode())
	f.Add([]byte{1, 3, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeNames(b)
		if err != nil {
			return
		}
		again, err := DecodeNames(n.Encode())
		if err != nil {
			t.Fatalf("re-encoded names do not decode: %v", err)
		}
		if !bytes.Equal(again.Encode(), n.Encode()) {
			t.Fatal("names changed through a round trip")
		}
	})
}
