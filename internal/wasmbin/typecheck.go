package wasmbin

// The type checker: the validation algorithm of the spec's appendix (an
// operand stack of value types, a control stack of frames, "unknown" types
// below an unreachable instruction), for the instruction set DecodeInstr
// knows. It runs after the structural check of a body, so every index it
// looks up is in range.

const unknown ValType = 0 // a value of any type, below unreachable code

type ctrlFrame struct {
	op          byte
	params      []ValType
	results     []ValType
	height      int
	unreachable bool
}

type typeChecker struct {
	m         *Module
	globals   []GlobalType
	funcTypes []uint32  // type index of every function in the index space
	tables    []ValType // element type of every table
	addr      ValType   // address type of memory 0
	vals      []ValType
	ctrls     []ctrlFrame
	locals    []LocalDecl // params first (Count 1 each), then the declarations
	localEnd  []uint64    // cumulative counts of locals
	results   []ValType   // the function's results
	declared  map[uint32]bool
	scratch   []ValType
	at        int
}

func newTypeChecker(m *Module, globals []GlobalType) *typeChecker {
	tc := &typeChecker{m: m, globals: globals, addr: I32}
	for _, im := range m.Imports {
		switch im.Kind {
		case KindFunc:
			tc.funcTypes = append(tc.funcTypes, im.TypeIndex)
		case KindTable:
			tc.tables = append(tc.tables, im.Table.Elem)
		}
	}
	tc.funcTypes = append(tc.funcTypes, m.Funcs...)
	for _, t := range m.Tables {
		tc.tables = append(tc.tables, t.Elem)
	}
	tc.addr = tc.addrOf()
	return tc
}

func (tc *typeChecker) addrOf() ValType {
	for _, im := range tc.m.Imports {
		if im.Kind == KindMemory {
			if im.Memory.Memory64 {
				return I64
			}
			return I32
		}
	}
	if len(tc.m.Memories) > 0 && tc.m.Memories[0].Memory64 {
		return I64
	}
	return I32
}

func (tc *typeChecker) mismatch() error { return malformed(tc.at, "type mismatch") }

func (tc *typeChecker) push(ts ...ValType) { tc.vals = append(tc.vals, ts...) }

func (tc *typeChecker) pop() (ValType, error) {
	f := &tc.ctrls[len(tc.ctrls)-1]
	if len(tc.vals) == f.height {
		if f.unreachable {
			return unknown, nil
		}
		return 0, tc.mismatch()
	}
	t := tc.vals[len(tc.vals)-1]
	tc.vals = tc.vals[:len(tc.vals)-1]
	return t, nil
}

func (tc *typeChecker) popT(want ValType) (ValType, error) {
	t, err := tc.pop()
	if err != nil {
		return 0, err
	}
	if t != want && t != unknown && want != unknown {
		return 0, tc.mismatch()
	}
	if t == unknown {
		return want, nil
	}
	return t, nil
}

func (tc *typeChecker) popAll(ts []ValType) error {
	for i := len(ts) - 1; i >= 0; i-- {
		if _, err := tc.popT(ts[i]); err != nil {
			return err
		}
	}
	return nil
}

func (tc *typeChecker) pushCtrl(op byte, params, results []ValType) {
	tc.ctrls = append(tc.ctrls, ctrlFrame{op: op, params: params, results: results, height: len(tc.vals)})
	tc.push(params...)
}

func (tc *typeChecker) popCtrl() (ctrlFrame, error) {
	f := tc.ctrls[len(tc.ctrls)-1]
	if err := tc.popAll(f.results); err != nil {
		return f, err
	}
	if len(tc.vals) != f.height {
		return f, tc.mismatch()
	}
	tc.ctrls = tc.ctrls[:len(tc.ctrls)-1]
	return f, nil
}

func (tc *typeChecker) labelTypes(f ctrlFrame) []ValType {
	if f.op == OpLoop {
		return f.params
	}
	return f.results
}

func (tc *typeChecker) setUnreachable() {
	f := &tc.ctrls[len(tc.ctrls)-1]
	tc.vals = tc.vals[:f.height]
	f.unreachable = true
}

func (tc *typeChecker) blockType(bt int64) ([]ValType, []ValType) {
	switch {
	case bt == BlockEmpty:
		return nil, nil
	case bt < 0:
		return nil, single[bt&0x7f : bt&0x7f+1]
	}
	t := tc.m.Types[bt]
	return t.Params, t.Results
}

func (tc *typeChecker) local(idx uint32) ValType {
	lo, hi := 0, len(tc.localEnd)
	for lo < hi {
		mid := (lo + hi) / 2
		if uint64(idx) < tc.localEnd[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return tc.locals[lo].Type
}

func sameTypes(a, b []ValType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// begin starts the type check of a body of type ft with the local
// declarations decls; step then checks each instruction in order.
func (tc *typeChecker) begin(ft FuncType, decls []LocalDecl) {
	tc.locals, tc.localEnd = tc.locals[:0], tc.localEnd[:0]
	var n uint64
	for _, p := range ft.Params {
		n++
		tc.locals = append(tc.locals, LocalDecl{Count: 1, Type: p})
		tc.localEnd = append(tc.localEnd, n)
	}
	for _, d := range decls {
		if d.Count == 0 {
			continue
		}
		n += uint64(d.Count)
		tc.locals = append(tc.locals, d)
		tc.localEnd = append(tc.localEnd, n)
	}
	tc.results = ft.Results
	tc.vals, tc.ctrls = tc.vals[:0], tc.ctrls[:0]
	tc.pushCtrl(OpBlock, nil, ft.Results)
}

// step checks instruction in of body; at is its module offset.
func (tc *typeChecker) step(body []byte, in Instr, at int) error {
	tc.at = at
	return tc.instr(body, in)
}

func (tc *typeChecker) call(ft FuncType) error {
	if err := tc.popAll(ft.Params); err != nil {
		return err
	}
	tc.push(ft.Results...)
	return nil
}

func (tc *typeChecker) tailCall(ft FuncType) error {
	if !sameTypes(ft.Results, tc.results) {
		return tc.mismatch()
	}
	if err := tc.popAll(ft.Params); err != nil {
		return err
	}
	tc.setUnreachable()
	return nil
}

// op pops params and pushes results.
func (tc *typeChecker) op(result ValType, params ...ValType) error {
	if err := tc.popAll(params); err != nil {
		return err
	}
	if result != 0 {
		tc.push(result)
	}
	return nil
}

func (tc *typeChecker) instr(body []byte, in Instr) error {
	m := tc.m
	switch in.Op {
	case OpUnreachable:
		tc.setUnreachable()
	case OpNop:
	case OpBlock, OpLoop, OpIf:
		params, results := tc.blockType(in.BlockType)
		if in.Op == OpIf {
			if _, err := tc.popT(I32); err != nil {
				return err
			}
		}
		if err := tc.popAll(params); err != nil {
			return err
		}
		tc.pushCtrl(in.Op, params, results)
	case OpElse:
		f, err := tc.popCtrl()
		if err != nil {
			return err
		}
		tc.pushCtrl(OpElse, f.params, f.results)
	case OpEnd:
		f, err := tc.popCtrl()
		if err != nil {
			return err
		}
		if f.op == OpIf && !sameTypes(f.params, f.results) {
			return tc.mismatch() // an if without else passes its params through
		}
		if len(tc.ctrls) > 0 {
			tc.push(f.results...)
		}
	case OpBr:
		if err := tc.popAll(tc.labelTypes(tc.ctrls[len(tc.ctrls)-1-int(in.Index)])); err != nil {
			return err
		}
		tc.setUnreachable()
	case OpBrIf:
		if _, err := tc.popT(I32); err != nil {
			return err
		}
		lt := tc.labelTypes(tc.ctrls[len(tc.ctrls)-1-int(in.Index)])
		if err := tc.popAll(lt); err != nil {
			return err
		}
		tc.push(lt...)
	case OpBrTable:
		return tc.brTable(body, in)
	case OpReturn:
		if err := tc.popAll(tc.results); err != nil {
			return err
		}
		tc.setUnreachable()
	case OpCall:
		return tc.call(m.Types[tc.funcTypes[in.Index]])
	case OpReturnCall:
		return tc.tailCall(m.Types[tc.funcTypes[in.Index]])
	case OpCallIndirect, OpReturnCallIndirect:
		if tc.tables[in.Index2] != FuncRef {
			return tc.mismatch()
		}
		if _, err := tc.popT(I32); err != nil {
			return err
		}
		if in.Op == OpCallIndirect {
			return tc.call(m.Types[in.Index])
		}
		return tc.tailCall(m.Types[in.Index])
	case OpDrop:
		_, err := tc.pop()
		return err
	case OpSelect, OpSelectT:
		if _, err := tc.popT(I32); err != nil {
			return err
		}
		if in.Op == OpSelectT {
			t := ValType(body[in.End-1])
			return tc.op(t, t, t)
		}
		t1, err := tc.pop()
		if err != nil {
			return err
		}
		t2, err := tc.pop()
		if err != nil {
			return err
		}
		if t1.IsRef() || t2.IsRef() || t1 != t2 && t1 != unknown && t2 != unknown {
			return tc.mismatch()
		}
		if t1 == unknown {
			t1 = t2
		}
		tc.push(t1)
	case OpLocalGet:
		tc.push(tc.local(in.Index))
	case OpLocalSet:
		_, err := tc.popT(tc.local(in.Index))
		return err
	case OpLocalTee:
		t := tc.local(in.Index)
		return tc.op(t, t)
	case OpGlobalGet:
		tc.push(tc.globals[in.Index].Type)
	case OpGlobalSet:
		_, err := tc.popT(tc.globals[in.Index].Type)
		return err
	case OpTableGet:
		return tc.op(tc.tables[in.Index], I32)
	case OpTableSet:
		return tc.op(0, I32, tc.tables[in.Index])
	case OpMemorySize:
		tc.push(tc.addr)
	case OpMemoryGrow:
		return tc.op(tc.addr, tc.addr)
	case OpI32Const:
		tc.push(I32)
	case OpI64Const:
		tc.push(I64)
	case OpF32Const:
		tc.push(F32)
	case OpF64Const:
		tc.push(F64)
	case OpRefNull:
		tc.push(ValType(body[in.End-1]))
	case OpRefIsNull:
		t, err := tc.pop()
		if err != nil {
			return err
		}
		if t != unknown && !t.IsRef() {
			return tc.mismatch()
		}
		tc.push(I32)
	case OpRefFunc:
		if !tc.declared[in.Index] {
			return malformed(tc.at, "undeclared function reference %d", in.Index)
		}
		tc.push(FuncRef)
	case OpPrefixFC:
		return tc.fc(in)
	case OpPrefixFD:
		return tc.fd(in)
	default:
		switch {
		case in.Op >= 0x28 && in.Op <= 0x35:
			return tc.op(loadType(in.Op), tc.addr)
		case in.Op >= 0x36 && in.Op <= 0x3e:
			return tc.op(0, tc.addr, storeType(in.Op))
		case in.Op >= 0x45 && in.Op <= 0xc4:
			r, a, b := numericSig(in.Op)
			if b != 0 {
				return tc.op(r, a, b)
			}
			return tc.op(r, a)
		}
		return malformed(tc.at, "illegal opcode 0x%02x", in.Op)
	}
	return nil
}

func (tc *typeChecker) brTable(body []byte, in Instr) error {
	if _, err := tc.popT(I32); err != nil {
		return err
	}
	r := reader{b: body, pos: in.Offset + 1}
	n, _ := r.count(1)
	def := tc.labelTypes(tc.ctrls[len(tc.ctrls)-1-int(in.Index)])
	for i := 0; i < n; i++ {
		l, _ := r.u32()
		lt := tc.labelTypes(tc.ctrls[len(tc.ctrls)-1-int(l)])
		if len(lt) != len(def) {
			return tc.mismatch()
		}
		// Check the operands against this label without consuming them.
		popped := tc.scratch[:0]
		for range lt {
			popped = append(popped, 0)
		}
		tc.scratch = popped
		for j := len(lt) - 1; j >= 0; j-- {
			t, err := tc.pop() // an unknown operand stays unknown for the next label
			if err != nil {
				return err
			}
			if t != lt[j] && t != unknown {
				return tc.mismatch()
			}
			popped[j] = t
		}
		tc.push(popped...)
	}
	if err := tc.popAll(def); err != nil {
		return err
	}
	tc.setUnreachable()
	return nil
}

func (tc *typeChecker) fc(in Instr) error {
	switch in.Sub {
	case 0, 1:
		return tc.op(I32, F32)
	case 2, 3:
		return tc.op(I32, F64)
	case 4, 5:
		return tc.op(I64, F32)
	case 6, 7:
		return tc.op(I64, F64)
	case FCMemoryInit:
		return tc.op(0, tc.addr, I32, I32)
	case FCDataDrop, FCElemDrop:
		return nil
	case FCMemoryCopy:
		return tc.op(0, tc.addr, tc.addr, tc.addr)
	case FCMemoryFill:
		return tc.op(0, tc.addr, I32, tc.addr)
	case FCTableInit:
		if tc.m.Elements[in.Index].Type != tc.tables[in.Index2] {
			return tc.mismatch()
		}
		return tc.op(0, I32, I32, I32)
	case FCTableCopy:
		if tc.tables[in.Index] != tc.tables[in.Index2] {
			return tc.mismatch()
		}
		return tc.op(0, I32, I32, I32)
	case FCTableGrow:
		return tc.op(I32, tc.tables[in.Index], I32)
	case FCTableSize:
		tc.push(I32)
		return nil
	case FCTableFill:
		return tc.op(0, I32, tc.tables[in.Index], I32)
	}
	return malformed(tc.at, "illegal opcode 0xfc %d", in.Sub)
}

func loadType(op byte) ValType {
	switch {
	case op == 0x28 || op >= 0x2c && op <= 0x2f:
		return I32
	case op == 0x29 || op >= 0x30:
		return I64
	case op == 0x2a:
		return F32
	}
	return F64
}

func storeType(op byte) ValType {
	switch op {
	case 0x36, 0x3a, 0x3b:
		return I32
	case 0x38:
		return F32
	case 0x39:
		return F64
	}
	return I64
}

// single holds one-element slices of every value type, for block types.
var single = func() []ValType {
	s := make([]ValType, 128)
	for i := range s {
		s[i] = ValType(i)
	}
	return s
}()

// numericSig is the signature of a numeric instruction (0x45 to 0xc4): its
// result and one or two operand types (b is 0 for one).
func numericSig(op byte) (r, a, b ValType) {
	un := func(t, r ValType) (ValType, ValType, ValType) { return r, t, 0 }
	bin := func(t, r ValType) (ValType, ValType, ValType) { return r, t, t }
	switch {
	case op == 0x45:
		return un(I32, I32)
	case op <= 0x4f:
		return bin(I32, I32)
	case op == 0x50:
		return un(I64, I32)
	case op <= 0x5a:
		return bin(I64, I32)
	case op <= 0x60:
		return bin(F32, I32)
	case op <= 0x66:
		return bin(F64, I32)
	case op <= 0x69:
		return un(I32, I32)
	case op <= 0x78:
		return bin(I32, I32)
	case op <= 0x7b:
		return un(I64, I64)
	case op <= 0x8a:
		return bin(I64, I64)
	case op <= 0x91:
		return un(F32, F32)
	case op <= 0x98:
		return bin(F32, F32)
	case op <= 0x9f:
		return un(F64, F64)
	case op <= 0xa6:
		return bin(F64, F64)
	}
	conv := [...][2]ValType{ // 0xa7 to 0xc4: from, to
		{I64, I32}, {F32, I32}, {F32, I32}, {F64, I32}, {F64, I32},
		{I32, I64}, {I32, I64}, {F32, I64}, {F32, I64}, {F64, I64}, {F64, I64},
		{I32, F32}, {I32, F32}, {I64, F32}, {I64, F32}, {F64, F32},
		{I32, F64}, {I32, F64}, {I64, F64}, {I64, F64}, {F32, F64},
		{F32, I32}, {F64, I64}, {I32, F32}, {I64, F64},
		{I32, I32}, {I32, I32}, {I64, I64}, {I64, I64}, {I64, I64},
	}
	c := conv[op-0xa7]
	return un(c[0], c[1])
}

// SIMD instruction shapes beyond "binary v128".
var (
	simdToI32 = map[uint32]bool{0x53: true, 0x63: true, 0x64: true, 0x83: true, 0x84: true, 0xa3: true, 0xa4: true, 0xc3: true, 0xc4: true}
	simdShift = map[uint32]bool{0x6b: true, 0x6c: true, 0x6d: true, 0x8b: true, 0x8c: true, 0x8d: true, 0xab: true, 0xac: true, 0xad: true, 0xcb: true, 0xcc: true, 0xcd: true}
	simdUnary = func() map[uint32]bool {
		u := map[uint32]bool{}
		for _, r := range [][2]uint32{{0x4d, 0x4d}, {0x5e, 0x62}, {0x67, 0x6a}, {0x74, 0x75}, {0x7a, 0x7a}, {0x7c, 0x81}, {0x87, 0x8a},
			{0x94, 0x94}, {0xa0, 0xa1}, {0xa7, 0xaa}, {0xc0, 0xc1}, {0xc7, 0xca}, {0xe0, 0xe1}, {0xe3, 0xe3}, {0xec, 0xed}, {0xef, 0xef}, {0xf8, 0xff}} {
			for o := r[0]; o <= r[1]; o++ {
				u[o] = true
			}
		}
		return u
	}()
)

func (tc *typeChecker) fd(in Instr) error {
	s := in.Sub
	switch {
	case s <= 0x0a || s == 0x5c || s == 0x5d:
		return tc.op(V128, tc.addr)
	case s == 0x0b:
		return tc.op(0, tc.addr, V128)
	case s == FDV128Const:
		tc.push(V128)
		return nil
	case s == 0x0d || s == 0x0e:
		return tc.op(V128, V128, V128)
	case s >= 0x0f && s <= 0x14:
		return tc.op(V128, [...]ValType{I32, I32, I32, I64, F32, F64}[s-0x0f])
	case s >= 0x15 && s <= 0x22:
		lane := [...]ValType{I32, I32, I32, I32, I32, I32, I32, I32, I64, I64, F32, F32, F64, F64}[s-0x15]
		if s == 0x17 || s == 0x1a || s == 0x1c || s == 0x1e || s == 0x20 || s == 0x22 { // replace_lane
			return tc.op(V128, V128, lane)
		}
		return tc.op(lane, V128)
	case s == 0x52:
		return tc.op(V128, V128, V128, V128)
	case s >= 0x54 && s <= 0x57:
		return tc.op(V128, tc.addr, V128)
	case s >= 0x58 && s <= 0x5b:
		return tc.op(0, tc.addr, V128)
	case simdToI32[s]:
		return tc.op(I32, V128)
	case simdShift[s]:
		return tc.op(V128, V128, I32)
	case simdUnary[s]:
		return tc.op(V128, V128)
	}
	return tc.op(V128, V128, V128)
}

// constType type-checks a constant expression (its bytes, end included)
// against the type it must produce.
func (tc *typeChecker) constType(expr []byte, base int, want ValType) error {
	var stack []ValType
	tc.at = base
	pop := func() ValType {
		if len(stack) == 0 {
			return unknown
		}
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return t
	}
	for off := 0; off < len(expr); {
		in, err := DecodeInstr(expr, off)
		if err != nil {
			return err
		}
		switch in.Op {
		case OpEnd:
			if len(stack) != 1 || stack[0] != want {
				return tc.mismatch()
			}
			return nil
		case OpI32Const:
			stack = append(stack, I32)
		case OpI64Const:
			stack = append(stack, I64)
		case OpF32Const:
			stack = append(stack, F32)
		case OpF64Const:
			stack = append(stack, F64)
		case OpRefNull:
			stack = append(stack, ValType(expr[in.End-1]))
		case OpRefFunc:
			stack = append(stack, FuncRef)
		case OpGlobalGet:
			g := tc.globals[in.Index]
			if g.Mutable {
				return malformed(base+in.Offset, "constant expression required")
			}
			stack = append(stack, g.Type)
		case OpPrefixFD:
			stack = append(stack, V128)
		default: // extended-const arithmetic
			t := I32
			if in.Op >= OpI64Add {
				t = I64
			}
			if pop() != t || pop() != t {
				return tc.mismatch()
			}
			stack = append(stack, t)
		}
		off = in.End
	}
	return tc.mismatch()
}
