package wasmbin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testdata(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../../abi/testdata/*.wasm")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test modules in ../testdata: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// body assembles a function body from instruction bytes, appending end.
func body(instrs ...byte) Code {
	return Code{Body: append(instrs, OpEnd)}
}

// small builds a module with one memory, one mutable i32 global, the given
// function type for every function, and the given bodies.
func small(ft FuncType, codes ...Code) []byte {
	funcs := make([]uint32, len(codes))
	return Encode([]Section{
		TypeSection([]FuncType{ft}),
		FunctionSection(funcs),
		MemorySection([]Limits{{Min: 1, Max: 2, HasMax: true}}),
		GlobalSection([]Global{{Type: GlobalType{I32, true}, Init: ConstI32(7)}}),
		ExportSection([]Export{{Name: "memory", Kind: KindMemory}, {Name: "f", Kind: KindFunc}}),
		CodeSection(codes),
	})
}

func TestParseAllOps(t *testing.T) {
	b, err := os.ReadFile("../../abi/testdata/all_ops.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.ImportedFuncs != 1 || m.ImportedGlobals != 1 || len(m.Imports) != 2 {
		t.Errorf("imports: %+v", m.Imports)
	}
	if m.Imports[0].Module != "env" || m.Imports[0].Name != "imp" || m.Imports[1].Global.Type != I32 {
		t.Errorf("imports: %+v", m.Imports)
	}
	if len(m.Memories) != 1 || m.Memories[0] != (Limits{Min: 1, Max: 2, HasMax: true}) {
		t.Errorf("memories: %+v", m.Memories)
	}
	if len(m.Tables) != 2 || m.Tables[0].Elem != FuncRef || m.Tables[1].Elem != ExternRef || m.Tables[0].Limits.Max != 8 {
		t.Errorf("tables: %+v", m.Tables)
	}
	if len(m.Globals) != 7 {
		t.Fatalf("globals: %d", len(m.Globals))
	}
	wantG := []GlobalType{{I64, true}, {F32, true}, {F64, false}, {FuncRef, false}, {ExternRef, false}, {I32, false}, {V128, false}}
	for i, g := range m.Globals {
		if g.Type != wantG[i] || g.Init[len(g.Init)-1] != OpEnd {
			t.Errorf("global %d: %+v", i, g)
		}
	}
	if m.Start == nil || *m.Start != 1 {
		t.Errorf("start: %v", m.Start)
	}
	if len(m.Elements) != 3 || m.Elements[0].Mode != ModeActive || m.Elements[1].Mode != ModePassive || m.Elements[2].Mode != ModeDeclarative {
		t.Errorf("elements: %+v", m.Elements)
	}
	if len(m.Data) != 2 || string(m.Data[0].Init) != "hello" || m.Data[1].Mode != ModePassive || m.DataCount == nil {
		t.Errorf("data: %+v", m.Data)
	}
	names := []string{}
	for _, e := range m.Exports {
		names = append(names, e.Name+":"+e.Kind.String())
	}
	if got := strings.Join(names, ","); got != "memory:memory,mvp:func,tail:func,t:table,mut:global" {
		t.Errorf("exports: %s", got)
	}
	ft, ok := m.FuncType(m.Exports[1].Index)
	if !ok || len(ft.Params) != 1 || ft.Params[0] != I32 || len(ft.Results) != 1 {
		t.Errorf("mvp type: %+v", ft)
	}

	// Every instruction family is seen by the decoder.
	seen := map[string]bool{}
	for _, c := range m.Codes {
		for off := 0; off < len(c.Body); {
			in, err := DecodeInstr(c.Body, off)
			if err != nil {
				t.Fatal(err)
			}
			if in.Offset != off || in.End <= off {
				t.Fatalf("offsets %+v at %d", in, off)
			}
			key := string(rune(in.Op))
			if in.Op == OpPrefixFC || in.Op == OpPrefixFD {
				key += string(rune(in.Sub))
			}
			seen[key] = true
			off = in.End
		}
	}
	want := map[string][]uint32{
		"one": {uint32(OpLoop), uint32(OpBrTable), uint32(OpCallIndirect), uint32(OpReturnCall), uint32(OpReturnCallIndirect),
			uint32(OpSelectT), 0xc0, 0xc4, uint32(OpTableSet), uint32(OpRefFunc), uint32(OpRefIsNull), uint32(OpMemoryGrow)},
		"fc": {0, 7, FCMemoryInit, FCDataDrop, FCMemoryCopy, FCMemoryFill, FCTableInit, FCElemDrop, FCTableCopy, FCTableGrow, FCTableSize, FCTableFill},
		"fd": {0x00, 0x01, 0x09, 0x0b, 0x0c, 0x0d, 0x16, 0x22, 0x55, 0x5b, 0x5d, 0xba, 0xff, 0xdf, 0x53, 0xae},
	}
	for _, op := range want["one"] {
		if !seen[string(rune(op))] {
			t.Errorf("opcode 0x%02x not decoded", op)
		}
	}
	for _, sub := range want["fc"] {
		if !seen[string(rune(OpPrefixFC))+string(rune(sub))] {
			t.Errorf("opcode 0xfc %d not decoded", sub)
		}
	}
	for _, sub := range want["fd"] {
		if !seen[string(rune(OpPrefixFD))+string(rune(sub))] {
			t.Errorf("opcode 0xfd 0x%02x not decoded", sub)
		}
	}
}

func TestRoundTripByteForByte(t *testing.T) {
	for name, b := range testdata(t) {
		m, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Errorf("%s: Encode of the parsed module differs from the input", name)
		}
		// Rebuilding the code section from parsed bodies gives the same bytes
		// as long as the producer used minimal LEBs.
		re := SetSection(m.Sections, CodeSection(m.Codes))
		m2, err := Parse(Encode(re))
		if err != nil {
			t.Errorf("%s: rebuilt code section: %v", name, err)
			continue
		}
		if len(m2.Codes) != len(m.Codes) {
			t.Errorf("%s: %d bodies after rebuild, want %d", name, len(m2.Codes), len(m.Codes))
		}
	}
}

func TestParseGoReactor(t *testing.T) {
	b, err := os.ReadFile("../../abi/testdata/go_reactor.wasm")
	if err != nil {
		t.Skip("go_reactor.wasm not built")
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	mut := 0
	for _, g := range m.Globals {
		if g.Type.Mutable {
			mut++
		}
	}
	if len(m.Codes) < 1000 || mut < 2 {
		t.Errorf("Go reactor: %d functions, %d mutable globals", len(m.Codes), mut)
	}
}

func TestBuilderSectionsParse(t *testing.T) {
	b := Encode([]Section{
		TypeSection([]FuncType{{Params: []ValType{I32}, Results: []ValType{I32, I64}}, {}}),
		ImportSection([]Import{
			{Module: "a", Name: "f", Kind: KindFunc, TypeIndex: 1},
			{Module: "a", Name: "t", Kind: KindTable, Table: TableType{FuncRef, Limits{Min: 1}}},
			{Module: "a", Name: "m", Kind: KindMemory, Memory: Limits{Min: 1, Max: 3, HasMax: true}},
			{Module: "a", Name: "g", Kind: KindGlobal, Global: GlobalType{F64, false}},
		}),
		FunctionSection([]uint32{1}),
		GlobalSection([]Global{{Type: GlobalType{V128, true}, Init: ConstZero(V128)}, {Type: GlobalType{ExternRef, true}, Init: ConstZero(ExternRef)}}),
		ExportSection([]Export{{Name: "g", Kind: KindGlobal, Index: 2}}),
		StartSection(1),
		ElementSection([]Element{ActiveFuncElement(ConstI32(0), []uint32{0, 1})}),
		DataCountSection(1),
		CodeSection([]Code{{Locals: []LocalDecl{{2, I32}, {1, F32}}, Body: []byte{OpLocalGet, 2, OpDrop, OpEnd}}}),
		DataSection([]Data{{Mode: ModeActive, Offset: ConstI32(8), Init: []byte("hi")}}),
		CustomSection("name", []byte{1, 2, 3}),
	})
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.NumFuncs() != 2 || m.NumGlobals() != 3 || m.NumTables() != 1 || m.NumMemories() != 1 {
		t.Errorf("index spaces: %d %d %d %d", m.NumFuncs(), m.NumGlobals(), m.NumTables(), m.NumMemories())
	}
	if gt, ok := m.GlobalType(0); !ok || gt.Type != F64 {
		t.Errorf("imported global type: %+v", gt)
	}
	if gt, ok := m.GlobalType(2); !ok || gt.Type != ExternRef || !gt.Mutable {
		t.Errorf("defined global type: %+v", gt)
	}
	if _, ok := m.GlobalType(3); ok {
		t.Error("global 3 should not exist")
	}
	if len(m.Customs) != 1 || m.Customs[0].Name != "name" || !bytes.Equal(m.Customs[0].Data, []byte{1, 2, 3}) {
		t.Errorf("custom: %+v", m.Customs)
	}
	if len(m.Codes[0].Locals) != 2 || m.Codes[0].Locals[0] != (LocalDecl{2, I32}) {
		t.Errorf("locals: %+v", m.Codes[0].Locals)
	}
	if m.Codes[0].BodyOffset+len(m.Codes[0].Body) > len(b) || !bytes.Equal(b[m.Codes[0].BodyOffset:m.Codes[0].BodyOffset+4], m.Codes[0].Body) {
		t.Error("BodyOffset does not locate the body")
	}
	// SetSection inserts in order and replaces in place.
	secs := SetSection(m.Sections, MemorySection([]Limits{{Min: 2}}))
	secs = SetSection(secs, GlobalSection(nil))
	secs = SetSection(secs, ExportSection(nil))
	m2, err := Parse(Encode(secs))
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Memories) != 1 || len(m2.Globals) != 0 {
		t.Errorf("after SetSection: %+v %+v", m2.Memories, m2.Globals)
	}
	secs = RemoveSection(secs, func(s Section) bool { return s.ID == SectionCustom })
	if m3, err := Parse(Encode(secs)); err != nil || len(m3.Customs) != 0 {
		t.Errorf("RemoveSection: %v", err)
	}
}

func TestParseSharedAndMemory64(t *testing.T) {
	b := Encode([]Section{MemorySection([]Limits{{Min: 1, Max: 2, HasMax: true, Shared: true}, {Min: 1 << 40, Memory64: true}})})
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Memories[0].Shared || !m.Memories[1].Memory64 || m.Memories[1].Min != 1<<40 {
		t.Errorf("flags not recorded: %+v", m.Memories)
	}
}

func TestParseErrors(t *testing.T) {
	hdr := append(append([]byte{}, Magic...), Version...)
	mod := func(secs ...[]byte) []byte {
		out := append([]byte{}, hdr...)
		for _, s := range secs {
			out = append(out, s...)
		}
		return out
	}
	sec := func(id byte, payload ...byte) []byte {
		return append(AppendU32([]byte{id}, uint32(len(payload))), payload...)
	}
	voidT := FuncType{}
	i32T := FuncType{Results: []ValType{I32}}
	bodyMod := func(ft FuncType, instrs ...byte) []byte { return small(ft, body(instrs...)) }
	noMem := func(instrs ...byte) []byte {
		return Encode([]Section{TypeSection([]FuncType{voidT}), FunctionSection([]uint32{0}), CodeSection([]Code{body(instrs...)})})
	}
	cases := []struct {
		name string
		in   []byte
		want string
		kind error
	}{
		{"empty", nil, "magic", ErrMalformed},
		{"bad magic", []byte("\x00asn\x01\x00\x00\x00"), "magic", ErrMalformed},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "binary version", ErrMalformed},
		{"unknown section", mod(sec(14)), "unknown section id 14", ErrMalformed},
		{"out of order", mod(sec(SectionFunction, 0), sec(SectionType, 0)), "out of order", ErrMalformed},
		{"repeated", mod(sec(SectionType, 0), sec(SectionType, 0)), "out of order or repeated", ErrMalformed},
		{"section overruns", mod([]byte{SectionType, 10, 0}), "overruns", ErrMalformed},
		{"section leftover", mod(sec(SectionType, 0, 0)), "left over", ErrMalformed},
		{"overlong size", mod([]byte{SectionType, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), "too long", ErrMalformed},
		{"huge count", mod(sec(SectionType, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x60)), "exceeds", ErrMalformed},
		{"bad functype form", mod(sec(SectionType, 1, 0x61, 0, 0)), "expected func type", ErrMalformed},
		{"gc type", mod(sec(SectionType, 1, 0x4e, 0, 0)), "GC type", ErrUnsupported},
		{"bad valtype", mod(sec(SectionType, 1, 0x60, 1, 0x40, 0)), "invalid value type", ErrMalformed},
		{"tag section", mod(sec(SectionTag, 0)), "tag section", ErrUnsupported},
		{"import bad kind", mod(sec(SectionImport, 1, 1, 'a', 1, 'b', 9)), "import kind", ErrMalformed},
		{"import type range", mod(sec(SectionImport, 1, 1, 'a', 1, 'b', 0, 0)), "type index 0 out of range", ErrMalformed},
		{"bad utf8 name", mod(sec(SectionImport, 1, 1, 0xff, 1, 'b', 0, 0)), "UTF-8", ErrMalformed},
		{"func type range", mod(sec(SectionFunction, 1, 5)), "type index 5 out of range", ErrMalformed},
		{"func without code", mod(sec(SectionType, 1, 0x60, 0, 0), sec(SectionFunction, 1, 0)), "1 functions declared but 0 bodies", ErrMalformed},
		{"code count mismatch", mod(sec(SectionType, 1, 0x60, 0, 0), sec(SectionFunction, 1, 0), sec(SectionCode, 0)), "0 function bodies for 1", ErrMalformed},
		{"memory too big", mod(sec(SectionMemory, 1, 0, 0x81, 0x80, 0x04)), "65536 pages", ErrMalformed},
		{"limits max<min", mod(sec(SectionMemory, 1, 1, 2, 1)), "below minimum", ErrMalformed},
		{"limits flags", mod(sec(SectionMemory, 1, 8, 0)), "limits flags", ErrMalformed},
		{"shared without max", mod(sec(SectionMemory, 1, 2, 0)), "shared memory", ErrMalformed},
		{"table64", mod(sec(SectionTable, 1, 0x70, 4, 0)), "64-bit table", ErrUnsupported},
		{"table elem type", mod(sec(SectionTable, 1, 0x7f, 0, 0)), "table element type", ErrMalformed},
		{"global mutability", mod(sec(SectionGlobal, 1, 0x7f, 2, 0x41, 0, 0x0b)), "mutability", ErrMalformed},
		{"global init not const", mod(sec(SectionGlobal, 1, 0x7f, 0, 0x41, 0, 0x45, 0x0b)), "constant expression", ErrMalformed},
		{"global init unterminated", mod(sec(SectionGlobal, 1, 0x7f, 0, 0x41, 0)), "unexpected end", ErrMalformed},
		{"global init global range", mod(sec(SectionGlobal, 1, 0x7f, 0, 0x23, 0, 0x0b)), "global.get 0 out of range", ErrMalformed},
		{"duplicate export", mod(sec(SectionMemory, 1, 0, 1), sec(SectionExport, 2, 1, 'm', 2, 0, 1, 'm', 2, 0)), "duplicate export", ErrMalformed},
		{"export range", mod(sec(SectionExport, 1, 1, 'm', 2, 0)), "memory index 0 out of range", ErrMalformed},
		{"export kind", mod(sec(SectionExport, 1, 1, 'm', 7, 0)), "invalid kind", ErrMalformed},
		{"start range", mod(sec(SectionStart, 3)), "start function 3", ErrMalformed},
		{"elem flags", mod(sec(SectionElement, 1, 8, 0)), "invalid flags", ErrMalformed},
		{"elem table range", mod(sec(SectionElement, 1, 0, 0x41, 0, 0x0b, 0)), "table 0 out of range", ErrMalformed},
		{"data flags", mod(sec(SectionData, 1, 3, 0)), "invalid flags", ErrMalformed},
		{"data memory range", mod(sec(SectionData, 1, 0, 0x41, 0, 0x0b, 0)), "memory 0 out of range", ErrMalformed},
		{"data overrun", mod(sec(SectionData, 1, 1, 5, 'a')), "exceeds", ErrMalformed},
		{"datacount mismatch", mod(sec(SectionDataCount, 2), sec(SectionData, 1, 1, 0)), "data count 2 but 1", ErrMalformed},
		{"body missing end", bodyMod(voidT, OpNop)[:len(bodyMod(voidT, OpNop))-1], "", ErrMalformed},
		{"body trailing bytes", Encode([]Section{TypeSection([]FuncType{voidT}), FunctionSection([]uint32{0}), CodeSection([]Code{{Body: []byte{OpEnd, OpNop}}})}), "after the end", ErrMalformed},
		{"body unclosed block", bodyMod(voidT, OpBlock, 0x40), "unexpected end", ErrMalformed},
		{"illegal opcode", bodyMod(voidT, 0x27), "illegal opcode 0x27", ErrMalformed},
		{"atomics", bodyMod(voidT, 0xfe, 0x00, 0x02, 0x00), "opcode 0xfe", ErrUnsupported},
		{"exceptions", bodyMod(voidT, 0x08, 0x00), "opcode 0x08", ErrUnsupported},
		{"simd hole", bodyMod(voidT, 0xfd, 0x9a, 0x01), "illegal opcode 0xfd 154", ErrMalformed},
		{"relaxed simd", bodyMod(voidT, 0xfd, 0x80, 0x02), "relaxed SIMD", ErrUnsupported},
		{"fc unknown", bodyMod(voidT, 0xfc, 18), "illegal opcode 0xfc 18", ErrMalformed},
		{"shuffle lane", bodyMod(voidT, append([]byte{0xfd, 0x0d}, bytes.Repeat([]byte{32}, 16)...)...), "shuffle lane", ErrMalformed},
		{"else without if", bodyMod(voidT, OpBlock, 0x40, OpElse, OpEnd), "else without if", ErrMalformed},
		{"bad block type", bodyMod(voidT, OpBlock, 0x60, OpEnd), "invalid block type", ErrMalformed},
		{"block type index", bodyMod(voidT, OpBlock, 0x05, OpEnd), "block type index 5", ErrMalformed},
		{"label range", bodyMod(voidT, OpBr, 1), "branch label 1", ErrMalformed},
		{"br_table label range", bodyMod(voidT, OpI32Const, 0, OpBrTable, 2, 0, 3, 0), "branch label 3", ErrMalformed},
		{"local range", bodyMod(voidT, OpLocalGet, 0), "local 0 out of range", ErrMalformed},
		{"global range", bodyMod(voidT, OpGlobalGet, 1), "global 1 out of range", ErrMalformed},
		{"call range", bodyMod(voidT, OpCall, 1), "function 1 out of range", ErrMalformed},
		{"tail call range", bodyMod(voidT, OpReturnCall, 9), "function 9 out of range", ErrMalformed},
		{"call_indirect no table", bodyMod(voidT, OpI32Const, 0, OpCallIndirect, 0, 0), "table 0 out of range", ErrMalformed},
		{"memory op without memory", noMem(OpI32Const, 0, 0x28, 2, 0, OpDrop), "memory 0 out of range", ErrMalformed},
		{"memory.grow without memory", noMem(OpI32Const, 0, OpMemoryGrow, 0, OpDrop), "memory 0 out of range", ErrMalformed},
		{"simd load without memory", noMem(OpI32Const, 0, 0xfd, 0, 4, 0, OpDrop), "memory 0 out of range", ErrMalformed},
		{"data.drop without datacount", bodyMod(voidT, 0xfc, 9, 0), "data count section", ErrMalformed},
		{"elem.drop range", bodyMod(voidT, 0xfc, 13, 0), "element segment 0", ErrMalformed},
		{"table.grow range", bodyMod(voidT, 0xfc, 15, 0), "table 0 out of range", ErrMalformed},
		{"alignment", bodyMod(voidT, OpI32Const, 0, 0x28, 40, 0, OpDrop), "alignment", ErrMalformed},
		{"alignment above natural", bodyMod(voidT, OpI32Const, 0, 0x2c, 1, 0, OpDrop), "larger than natural", ErrMalformed},
		{"simd alignment above natural", bodyMod(voidT, OpI32Const, 0, 0xfd, 0, 5, 0, OpDrop), "larger than natural", ErrMalformed},
		{"multi-memory memarg", bodyMod(voidT, OpI32Const, 0, 0x28, 0x42, 0, 0, OpDrop), "multi-memory", ErrUnsupported},
		{"memarg offset above 2^32-1", bodyMod(voidT, OpI32Const, 0, 0x28, 2, 0x80, 0x80, 0x80, 0x80, 0x10, OpDrop), "too large", ErrMalformed},
		{"memarg offset too long", bodyMod(voidT, OpI32Const, 0, 0x28, 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, OpDrop), "too long", ErrMalformed},
		{"memory.grow reserved LEB", bodyMod(voidT, OpI32Const, 0, OpMemoryGrow, 0x80, 0x00, OpDrop), "zero byte expected", ErrMalformed},
		{"memory.size reserved 1", bodyMod(voidT, OpMemorySize, 1, OpDrop), "zero byte expected", ErrMalformed},
		{"memory.fill reserved", bodyMod(voidT, 0xfc, 11, 1), "zero byte expected", ErrMalformed},
		{"memory.copy reserved", bodyMod(voidT, 0xfc, 10, 0, 0x80), "zero byte expected", ErrMalformed},
		{"memory.init reserved", bodyMod(voidT, 0xfc, 8, 0, 1), "zero byte expected", ErrMalformed},
		{"lane range", bodyMod(voidT, 0xfd, 0x1b, 4), "lane index 4", ErrMalformed},
		{"typed function reference", bodyMod(voidT, OpBlock, 0x64, 0, OpEnd), "typed function references", ErrUnsupported},
		{"typed select arity", bodyMod(voidT, OpSelectT, 2, 0x7f, 0x7f), "exactly one type", ErrMalformed},
		{"ref.null type", bodyMod(voidT, OpRefNull, 0x7f), "reference type", ErrMalformed},
		{"too many locals", Encode([]Section{TypeSection([]FuncType{voidT}), FunctionSection([]uint32{0}), CodeSection([]Code{{Locals: []LocalDecl{{0xffffffff, I32}, {2, I32}}, Body: []byte{OpEnd}}})}), "too many locals", ErrMalformed},
		{"immutable global.set", Encode([]Section{TypeSection([]FuncType{voidT}), FunctionSection([]uint32{0}),
			GlobalSection([]Global{{Type: GlobalType{I32, false}, Init: ConstI32(0)}}),
			CodeSection([]Code{body(OpI32Const, 0, OpGlobalSet, 0)})}), "immutable global", ErrMalformed},
	}
	_ = i32T
	for _, c := range cases {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("%s: parsed", c.name)
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %v containing %q", c.name, err, c.kind, c.want)
		}
		var we *Error
		if !errors.As(err, &we) || !strings.Contains(err.Error(), "offset") {
			t.Errorf("%s: error without an offset: %v", c.name, err)
		}
	}
}

func TestParseSizeCap(t *testing.T) {
	b := make([]byte, MaxModuleSize+1)
	copy(b, Magic)
	copy(b[4:], Version)
	if _, err := Parse(b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize module: %v", err)
	}
}

func TestParseValidBodies(t *testing.T) {
	i32T := FuncType{Results: []ValType{I32}}
	ok := [][]byte{
		small(i32T, body(OpI32Const, 1, OpBlock, 0x7f, OpI32Const, 2, OpEnd, OpI32Add)),
		small(FuncType{}, body(OpLoop, 0x40, OpBr, 0, OpEnd)),
		small(FuncType{}, body(OpI32Const, 1, OpIf, 0x40, OpElse, OpEnd)),
		small(FuncType{}, body(OpGlobalGet, 0, OpGlobalSet, 0)),
		small(FuncType{Params: []ValType{I32}}, body(OpLocalGet, 0, OpBrTable, 1, 0, 0)),
		small(FuncType{}, body(OpI32Const, 0, 0x28, 2, 0xff, 0xff, 0xff, 0xff, 0x0f, OpDrop)), // offset 2^32-1
		small(FuncType{}, body(OpI32Const, 0, 0x28, 0x82, 0x80, 0x80, 0x80, 0x00, 0, OpDrop)), // padded align
		small(FuncType{}, body(OpI32Const, 0, OpMemoryGrow, 0, OpDrop, OpMemorySize, 0, OpDrop)),
	}
	for i, b := range ok {
		if _, err := Parse(b); err != nil {
			t.Errorf("module %d: %v", i, err)
		}
	}
}
