package wasmbin

import (
	"errors"
	"strings"
	"testing"
)

func TestTypeCheck(t *testing.T) {
	voidT, i32T := FuncType{}, FuncType{Results: []ValType{I32}}
	f32c := []byte{OpF32Const, 0, 0, 0, 0}
	f64c := []byte{OpF64Const, 0, 0, 0, 0, 0, 0, 0, 0}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	invalid := map[string][]byte{
		"i32.add of an f32":    small(voidT, body(cat(f32c, []byte{OpI32Const, 1, OpI32Add, OpDrop})...)),
		"missing result":       small(i32T, body()),
		"value left over":      small(voidT, body(OpI32Const, 1)),
		"if without else":      small(i32T, body(OpI32Const, 1, OpIf, 0x7f, OpI32Const, 1, OpEnd)),
		"select of references": small(voidT, body(OpRefNull, 0x70, OpRefNull, 0x70, OpI32Const, 1, OpSelect, OpDrop)),
		"br with an f32":       small(voidT, body(cat([]byte{OpBlock, 0x7f}, f32c, []byte{OpBr, 0, OpEnd, OpDrop})...)),
		"local.set of an i64":  small(FuncType{Params: []ValType{I32}}, body(OpI64Const, 0, OpLocalSet, 0)),
		"undeclared ref.func":  small(voidT, body(OpRefFunc, 1, OpDrop), body()),
		"global init type":     Encode([]Section{GlobalSection([]Global{{Type: GlobalType{Type: I32}, Init: ConstI64(0)}})}),
		"element of externref for a funcref table": Encode([]Section{
			TableSection([]TableType{{Elem: FuncRef, Limits: Limits{Min: 1}}}),
			{ID: SectionElement, Payload: []byte{1, 6, 0, OpI32Const, 0, OpEnd, 0x6f, 1, OpRefNull, 0x6f, OpEnd}, Offset: -1, PayloadOffset: -1},
		}),
	}
	for name, b := range invalid {
		_, err := Parse(b)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "type mismatch") && !strings.Contains(err.Error(), "undeclared") {
			t.Errorf("%s: %v", name, err)
		}
	}
	valid := map[string][]byte{
		"unreachable is polymorphic": small(voidT, body(OpUnreachable, OpI32Add, OpDrop)),
		"br_table meets bottom": small(voidT, body(cat([]byte{OpBlock, 0x7c, OpBlock, 0x7d, OpUnreachable, OpI32Const, 1, OpBrTable, 2, 0, 1, 1, OpEnd, OpDrop},
			f64c, []byte{OpEnd, OpDrop})...)),
		"typed select":      small(voidT, body(OpRefNull, 0x70, OpRefNull, 0x70, OpI32Const, 1, OpSelectT, 1, 0x70, OpDrop)),
		"declared ref.func": small(voidT, body(OpRefFunc, 0, OpDrop)),
		"return in a block": small(i32T, body(OpBlock, 0x40, OpI32Const, 1, OpReturn, OpEnd, OpI32Const, 2)),
	}
	for name, b := range valid {
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
