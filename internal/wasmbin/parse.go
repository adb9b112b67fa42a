package wasmbin

import (
	"bytes"
	"fmt"
)

// Parse decodes and checks a core wasm module. The returned Module aliases b:
// do not modify b while the Module is in use.
func Parse(b []byte) (*Module, error) {
	if len(b) > MaxModuleSize {
		return nil, malformed(0, "module of %d bytes exceeds the %d-byte limit", len(b), MaxModuleSize)
	}
	if len(b) < 8 || !bytes.Equal(b[:4], Magic) {
		return nil, malformed(0, "missing wasm magic number")
	}
	if !bytes.Equal(b[4:8], Version) {
		return nil, malformed(4, "unknown binary version % x (only 1 is a core module)", b[4:8])
	}
	p := parser{m: &Module{}}
	r := reader{b: b, pos: 8}
	lastRank := 0
	for !r.eof() {
		secOff := r.off()
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		payloadOff := r.off()
		payload, err := r.bytes(int(size))
		if err != nil {
			return nil, malformed(payloadOff, "section %d of %d bytes overruns the module", id, size)
		}
		sec := Section{ID: id, Offset: secOff, PayloadOffset: payloadOff, Payload: payload,
			Header: b[secOff:payloadOff:payloadOff]}
		sr := reader{b: payload, base: payloadOff}
		if id == SectionCustom {
			name, err := sr.name()
			if err != nil {
				return nil, err
			}
			sec.Name = name
			if sr.pos == len(payload) && r.eof() {
				// Valid by the spec, but wazero cannot read a last section
				// whose name ends the module ("failed to read custom section
				// name: EOF"): what wasmesh accepts must compile.
				return nil, unsupported(secOff, "a custom section with no content after its name at the end of the module")
			}
			p.m.Customs = append(p.m.Customs, Custom{Name: name, Data: payload[sr.pos:]})
			p.m.Sections = append(p.m.Sections, sec)
			continue
		}
		rank := sectionRank(id)
		if rank == 0 {
			return nil, malformed(secOff, "unknown section id %d", id)
		}
		if id == SectionTag {
			return nil, unsupported(secOff, "tag section (exception handling)")
		}
		if rank <= lastRank {
			return nil, malformed(secOff, "section %d out of order or repeated", id)
		}
		lastRank = rank
		if err := p.section(id, &sr); err != nil {
			return nil, err
		}
		if !sr.eof() {
			return nil, malformed(sr.off(), "section %d has %d bytes left over", id, sr.remaining())
		}
		p.m.Sections = append(p.m.Sections, sec)
	}
	m := p.m
	if len(m.Funcs) != len(m.Codes) {
		return nil, malformed(len(b), "%d functions declared but %d bodies", len(m.Funcs), len(m.Codes))
	}
	if m.DataCount != nil && int(*m.DataCount) != len(m.Data) {
		return nil, malformed(len(b), "data count %d but %d data segments", *m.DataCount, len(m.Data))
	}
	return m, nil
}

type parser struct {
	m        *Module
	gtypes   []GlobalType    // the global index space so far
	declared map[uint32]bool // functions a body's ref.func may name
}

// declare records that function f is referenced outside function bodies
// (an export, an element segment, a global's initializer), which makes
// ref.func f valid inside them.
func (p *parser) declare(f uint32) {
	if p.declared == nil {
		p.declared = map[uint32]bool{}
	}
	p.declared[f] = true
}

// tableElem is the element type of table t (in range).
func (p *parser) tableElem(t uint32) ValType {
	for _, im := range p.m.Imports {
		if im.Kind == KindTable {
			if t == 0 {
				return im.Table.Elem
			}
			t--
		}
	}
	return p.m.Tables[t].Elem
}

// typedExpr reads a constant expression and checks it produces want.
func (p *parser) typedExpr(r *reader, want ValType) ([]byte, error) {
	at := r.off()
	e, err := p.constExpr(r)
	if err != nil {
		return nil, err
	}
	tc := typeChecker{m: p.m, globals: p.gtypes}
	return e, tc.constType(e, at, want)
}

func (p *parser) section(id byte, r *reader) error {
	switch id {
	case SectionType:
		return p.types(r)
	case SectionImport:
		return p.imports(r)
	case SectionFunction:
		return p.functions(r)
	case SectionTable:
		return p.tables(r)
	case SectionMemory:
		return p.memories(r)
	case SectionGlobal:
		return p.globals(r)
	case SectionExport:
		return p.exports(r)
	case SectionStart:
		return p.start(r)
	case SectionElement:
		return p.elements(r)
	case SectionDataCount:
		n, err := r.u32()
		p.m.DataCount = &n
		return err
	case SectionCode:
		return p.codes(r)
	case SectionData:
		return p.data(r)
	}
	return malformed(r.off(), "unknown section id %d", id)
}

func (p *parser) valType(r *reader) (ValType, error) {
	at := r.off()
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	if !ValidValType(ValType(c)) {
		return 0, badType(at, "value type", c)
	}
	return ValType(c), nil
}

func (p *parser) valTypes(r *reader) ([]ValType, error) {
	n, err := r.count(1)
	if err != nil {
		return nil, err
	}
	out := make([]ValType, n)
	for i := range out {
		if out[i], err = p.valType(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *parser) types(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	p.m.Types = make([]FuncType, n)
	for i := range p.m.Types {
		at := r.off()
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			if form == 0x4e || form == 0x4f || form == 0x50 || form == 0x5e || form == 0x5f {
				return unsupported(at, "GC type form 0x%02x", form)
			}
			return malformed(at, "type %d: expected func type 0x60, got 0x%02x", i, form)
		}
		t := &p.m.Types[i]
		if t.Params, err = p.valTypes(r); err != nil {
			return err
		}
		if t.Results, err = p.valTypes(r); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) limits(r *reader, memory bool) (Limits, error) {
	at := r.off()
	flags, err := r.byte()
	if err != nil {
		return Limits{}, err
	}
	var l Limits
	allowed := byte(0x01)
	if memory {
		allowed = 0x07
	}
	if flags&^allowed != 0 {
		if !memory && flags&^allowed == 0x04 {
			return l, unsupported(at, "64-bit table")
		}
		return l, malformed(at, "invalid limits flags 0x%02x", flags)
	}
	l.HasMax = flags&0x01 != 0
	l.Shared = flags&0x02 != 0
	l.Memory64 = flags&0x04 != 0
	read := func() (uint64, error) {
		if l.Memory64 {
			return r.u64()
		}
		v, err := r.u32()
		return uint64(v), err
	}
	if l.Min, err = read(); err != nil {
		return l, err
	}
	if l.HasMax {
		if l.Max, err = read(); err != nil {
			return l, err
		}
		if l.Max < l.Min {
			return l, malformed(at, "limits maximum %d below minimum %d", l.Max, l.Min)
		}
	}
	if memory && !l.Memory64 && (l.Min > 65536 || l.HasMax && l.Max > 65536) {
		return l, malformed(at, "memory size must be at most 65536 pages (4 GiB)")
	}
	if l.Shared && !l.HasMax {
		return l, malformed(at, "shared memory must have a maximum")
	}
	return l, nil
}

func (p *parser) tableType(r *reader) (TableType, error) {
	at := r.off()
	c, err := r.byte()
	if err != nil {
		return TableType{}, err
	}
	if !ValType(c).IsRef() {
		return TableType{}, badType(at, "table element type", c)
	}
	l, err := p.limits(r, false)
	return TableType{Elem: ValType(c), Limits: l}, err
}

func (p *parser) globalType(r *reader) (GlobalType, error) {
	t, err := p.valType(r)
	if err != nil {
		return GlobalType{}, err
	}
	at := r.off()
	mut, err := r.byte()
	if err != nil {
		return GlobalType{}, err
	}
	if mut > 1 {
		return GlobalType{}, malformed(at, "invalid mutability 0x%02x", mut)
	}
	return GlobalType{Type: t, Mutable: mut == 1}, nil
}

func (p *parser) imports(r *reader) error {
	n, err := r.count(4)
	if err != nil {
		return err
	}
	m := p.m
	m.Imports = make([]Import, n)
	for i := range m.Imports {
		im := &m.Imports[i]
		if im.Module, err = r.name(); err != nil {
			return err
		}
		if im.Name, err = r.name(); err != nil {
			return err
		}
		at := r.off()
		kind, err := r.byte()
		if err != nil {
			return err
		}
		im.Kind = ExternKind(kind)
		switch im.Kind {
		case KindFunc:
			if im.TypeIndex, err = r.u32(); err != nil {
				return err
			}
			if int(im.TypeIndex) >= len(m.Types) {
				return malformed(at, "import %s.%s: type index %d out of range", im.Module, im.Name, im.TypeIndex)
			}
			m.ImportedFuncs++
		case KindTable:
			if im.Table, err = p.tableType(r); err != nil {
				return err
			}
			m.ImportedTables++
		case KindMemory:
			if im.Memory, err = p.limits(r, true); err != nil {
				return err
			}
			m.ImportedMemories++
		case KindGlobal:
			if im.Global, err = p.globalType(r); err != nil {
				return err
			}
			m.ImportedGlobals++
			p.gtypes = append(p.gtypes, im.Global)
		case 4:
			return unsupported(at, "tag import (exception handling)")
		default:
			return malformed(at, "invalid import kind 0x%02x", kind)
		}
	}
	return nil
}

func (p *parser) functions(r *reader) error {
	n, err := r.count(1)
	if err != nil {
		return err
	}
	p.m.Funcs = make([]uint32, n)
	for i := range p.m.Funcs {
		at := r.off()
		if p.m.Funcs[i], err = r.u32(); err != nil {
			return err
		}
		if int(p.m.Funcs[i]) >= len(p.m.Types) {
			return malformed(at, "function %d: type index %d out of range", i, p.m.Funcs[i])
		}
	}
	return nil
}

func (p *parser) tables(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	p.m.Tables = make([]TableType, n)
	for i := range p.m.Tables {
		at := r.off()
		if r.remaining() > 0 && r.b[r.pos] == 0x40 {
			return unsupported(at, "table with initializer expression")
		}
		if p.m.Tables[i], err = p.tableType(r); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) memories(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	p.m.Memories = make([]Limits, n)
	for i := range p.m.Memories {
		if p.m.Memories[i], err = p.limits(r, true); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) globals(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	p.m.Globals = make([]Global, 0, n)
	for i := 0; i < n; i++ {
		var g Global
		if g.Type, err = p.globalType(r); err != nil {
			return err
		}
		if g.Init, err = p.typedExpr(r, g.Type.Type); err != nil {
			return err
		}
		p.m.Globals = append(p.m.Globals, g)
		p.gtypes = append(p.gtypes, g.Type)
	}
	return nil
}

func (p *parser) exports(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	m := p.m
	m.Exports = make([]Export, n)
	seen := make(map[string]struct{}, n)
	for i := range m.Exports {
		e := &m.Exports[i]
		at := r.off()
		if e.Name, err = r.name(); err != nil {
			return err
		}
		if _, dup := seen[e.Name]; dup {
			return malformed(at, "duplicate export name %q", e.Name)
		}
		seen[e.Name] = struct{}{}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		e.Kind = ExternKind(kind)
		if e.Index, err = r.u32(); err != nil {
			return err
		}
		var limit uint32
		switch e.Kind {
		case KindFunc:
			limit = m.NumFuncs()
		case KindTable:
			limit = m.NumTables()
		case KindMemory:
			limit = m.NumMemories()
		case KindGlobal:
			limit = m.NumGlobals()
		case 4:
			return unsupported(at, "tag export (exception handling)")
		default:
			return malformed(at, "export %q: invalid kind 0x%02x", e.Name, kind)
		}
		if e.Index >= limit {
			return malformed(at, "export %q: %s index %d out of range", e.Name, e.Kind, e.Index)
		}
		if e.Kind == KindFunc {
			p.declare(e.Index)
		}
	}
	return nil
}

func (p *parser) start(r *reader) error {
	at := r.off()
	idx, err := r.u32()
	if err != nil {
		return err
	}
	ft, ok := p.m.FuncType(idx)
	if !ok {
		return malformed(at, "start function %d out of range", idx)
	}
	if len(ft.Params) != 0 || len(ft.Results) != 0 {
		return malformed(at, "start function %d must take and return nothing", idx)
	}
	p.m.Start = &idx
	return nil
}

func (p *parser) elements(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	m := p.m
	m.Elements = make([]Element, n)
	for i := range m.Elements {
		e := &m.Elements[i]
		start := r.pos
		at := r.off()
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return malformed(at, "element segment %d: invalid flags %d", i, flags)
		}
		e.Type = FuncRef
		switch {
		case flags&1 == 0:
			e.Mode = ModeActive
		case flags&2 == 0:
			e.Mode = ModePassive
		default:
			e.Mode = ModeDeclarative
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			if e.Table, err = r.u32(); err != nil {
				return err
			}
		}
		if e.Mode == ModeActive {
			if e.Table >= m.NumTables() {
				return malformed(at, "element segment %d: table %d out of range", i, e.Table)
			}
			if e.Offset, err = p.typedExpr(r, I32); err != nil {
				return err
			}
		}
		exprs := flags&4 != 0
		if flags&3 != 0 { // elemkind or reftype byte
			kat := r.off()
			k, err := r.byte()
			if err != nil {
				return err
			}
			if exprs {
				if !ValType(k).IsRef() {
					return badType(kat, fmt.Sprintf("element segment %d: reference type", i), k)
				}
				e.Type = ValType(k)
			} else if k != 0x00 {
				return malformed(kat, "element segment %d: invalid element kind 0x%02x", i, k)
			}
		}
		cnt, err := r.count(1)
		if err != nil {
			return err
		}
		e.Count = cnt
		for j := 0; j < cnt; j++ {
			if exprs {
				if _, err := p.typedExpr(r, e.Type); err != nil {
					return err
				}
				continue
			}
			fat := r.off()
			f, err := r.u32()
			if err != nil {
				return err
			}
			if f >= m.NumFuncs() {
				return malformed(fat, "element segment %d: function %d out of range", i, f)
			}
			p.declare(f)
		}
		if e.Mode == ModeActive && p.tableElem(e.Table) != e.Type {
			return malformed(at, "type mismatch: element segment %d of %s for a table of %s", i, e.Type, p.tableElem(e.Table))
		}
		e.Raw = r.b[start:r.pos:r.pos]
	}
	return nil
}

func (p *parser) data(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	m := p.m
	m.Data = make([]Data, n)
	for i := range m.Data {
		d := &m.Data[i]
		start := r.pos
		at := r.off()
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0, 2:
			d.Mode = ModeActive
			if flags == 2 {
				if d.Memory, err = r.u32(); err != nil {
					return err
				}
			}
			if d.Memory >= m.NumMemories() {
				return malformed(at, "data segment %d: memory %d out of range", i, d.Memory)
			}
			if d.Offset, err = p.typedExpr(r, p.addrType()); err != nil {
				return err
			}
		case 1:
			d.Mode = ModePassive
		default:
			return malformed(at, "data segment %d: invalid flags %d", i, flags)
		}
		sz, err := r.u32()
		if err != nil {
			return err
		}
		if d.Init, err = r.bytes(int(sz)); err != nil {
			return err
		}
		d.Raw = r.b[start:r.pos:r.pos]
	}
	return nil
}

// constExpr reads a constant expression up to and including its end opcode.
// Extended constant arithmetic (i32/i64 add, sub, mul) is accepted.
func (p *parser) constExpr(r *reader) ([]byte, error) {
	start := r.pos
	for {
		at := r.off()
		in, err := decodeInstr(r)
		if err != nil {
			return nil, err
		}
		switch in.Op {
		case OpEnd:
			return r.b[start:r.pos:r.pos], nil
		case OpI32Const, OpI64Const, OpF32Const, OpF64Const, OpRefNull,
			OpI32Add, OpI32Sub, OpI32Mul, OpI64Add, OpI64Sub, OpI64Mul:
		case OpRefFunc:
			if in.Index >= p.m.NumFuncs() {
				return nil, malformed(at, "ref.func %d out of range", in.Index)
			}
			p.declare(in.Index)
		case OpGlobalGet:
			if in.Index >= p.m.NumGlobals() {
				return nil, malformed(at, "global.get %d out of range", in.Index)
			}
		case OpPrefixFD:
			if in.Sub != FDV128Const {
				return nil, malformed(at, "instruction 0xfd %d not allowed in a constant expression", in.Sub)
			}
		default:
			return nil, malformed(at, "instruction 0x%02x not allowed in a constant expression", in.Op)
		}
	}
}

func (p *parser) codes(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	m := p.m
	if n != len(m.Funcs) {
		return malformed(r.off(), "%d function bodies for %d declared functions", n, len(m.Funcs))
	}
	m.Codes = make([]Code, n)
	v := bodyChecker{m: m, globals: m.globalTypes()}
	tc := newTypeChecker(m, v.globals)
	tc.declared = p.declared
	v.tc = tc
	for i := range m.Codes {
		c := &m.Codes[i]
		size, err := r.u32()
		if err != nil {
			return err
		}
		entryOff := r.off()
		entry, err := r.bytes(int(size))
		if err != nil {
			return err
		}
		c.Raw = entry
		er := reader{b: entry, base: entryOff}
		nd, err := er.count(2)
		if err != nil {
			return err
		}
		c.Locals = make([]LocalDecl, nd)
		ft := m.Types[m.Funcs[i]]
		total := uint64(len(ft.Params))
		for j := range c.Locals {
			at := er.off()
			if c.Locals[j].Count, err = er.u32(); err != nil {
				return err
			}
			if c.Locals[j].Type, err = p.valType(&er); err != nil {
				return err
			}
			total += uint64(c.Locals[j].Count)
			if total > 1<<32-1 {
				return malformed(at, "function %d has too many locals", i)
			}
		}
		c.Body = entry[er.pos:]
		c.BodyOffset = er.off()
		br := reader{b: c.Body, base: c.BodyOffset}
		tc.begin(ft, c.Locals)
		if err := v.check(&br, total); err != nil {
			return err
		}
	}
	return nil
}

// bodyChecker walks a function body: every instruction decodes, blocks nest,
// labels, locals and module indices are in range, and the final end is the
// last byte.
type bodyChecker struct {
	m       *Module
	globals []GlobalType // the global index space
	stack   []byte       // open block opcodes; the function frame is OpBlock
	tc      *typeChecker // type-checks each instruction once it is in range
}

func (v *bodyChecker) check(r *reader, locals uint64) error {
	m := v.m
	v.stack = append(v.stack[:0], OpBlock)
	for {
		at := r.off()
		in, err := decodeInstr(r)
		if err != nil {
			return err
		}
		bad := func(what string, idx uint32) error {
			return malformed(at, "%s %d out of range", what, idx)
		}
		switch in.Op {
		case OpBlock, OpLoop, OpIf:
			if in.BlockType >= 0 && in.BlockType >= int64(len(m.Types)) {
				return malformed(at, "block type index %d out of range", in.BlockType)
			}
			v.stack = append(v.stack, in.Op)
		case OpElse:
			if v.stack[len(v.stack)-1] != OpIf {
				return malformed(at, "else without if")
			}
			v.stack[len(v.stack)-1] = OpElse
		case OpEnd:
			v.stack = v.stack[:len(v.stack)-1]
			if len(v.stack) == 0 {
				if !r.eof() {
					return malformed(r.off(), "%d bytes after the end of the function body", r.remaining())
				}
				return v.tc.step(r.b, in, at)
			}
		case OpBr, OpBrIf, OpBrTable:
			if in.Op == OpBrTable {
				in.Index = in.Index2 // the largest label
			}
			if uint64(in.Index) >= uint64(len(v.stack)) {
				return bad("branch label", in.Index)
			}
		case OpCall, OpReturnCall, OpRefFunc:
			if in.Index >= m.NumFuncs() {
				return bad("function", in.Index)
			}
		case OpCallIndirect, OpReturnCallIndirect:
			if int(in.Index) >= len(m.Types) {
				return bad("type", in.Index)
			}
			if in.Index2 >= m.NumTables() {
				return bad("table", in.Index2)
			}
		case OpLocalGet, OpLocalSet, OpLocalTee:
			if uint64(in.Index) >= locals {
				return bad("local", in.Index)
			}
		case OpGlobalGet, OpGlobalSet:
			if uint64(in.Index) >= uint64(len(v.globals)) {
				return bad("global", in.Index)
			}
			gt := v.globals[in.Index]
			if in.Op == OpGlobalSet && !gt.Mutable {
				return malformed(at, "global.set of immutable global %d", in.Index)
			}
		case OpTableGet, OpTableSet:
			if in.Index >= m.NumTables() {
				return bad("table", in.Index)
			}
		case OpMemorySize, OpMemoryGrow:
			if in.Index >= m.NumMemories() {
				return bad("memory", in.Index)
			}
		case OpPrefixFC:
			if err := v.checkFC(at, in); err != nil {
				return err
			}
		case OpPrefixFD:
			if in.Sub <= 0x0b || in.Sub >= 0x54 && in.Sub <= 0x5d {
				if in.Index >= m.NumMemories() {
					return bad("memory", in.Index)
				}
			}
		default:
			if in.Op >= 0x28 && in.Op <= 0x3e && in.Index >= m.NumMemories() {
				return bad("memory", in.Index)
			}
		}
		if err := v.tc.step(r.b, in, at); err != nil {
			return err
		}
	}
}

func (v *bodyChecker) checkFC(at int, in Instr) error {
	m := v.m
	bad := func(what string, idx uint32) error {
		return malformed(at, "%s %d out of range", what, idx)
	}
	dataOK := func(idx uint32) error {
		if m.DataCount == nil {
			return malformed(at, "memory.init or data.drop without a data count section")
		}
		if idx >= *m.DataCount {
			return bad("data segment", idx)
		}
		return nil
	}
	switch in.Sub {
	case FCMemoryInit:
		if err := dataOK(in.Index); err != nil {
			return err
		}
		if in.Index2 >= m.NumMemories() {
			return bad("memory", in.Index2)
		}
	case FCDataDrop:
		return dataOK(in.Index)
	case FCMemoryCopy:
		if in.Index >= m.NumMemories() {
			return bad("memory", in.Index)
		}
		if in.Index2 >= m.NumMemories() {
			return bad("memory", in.Index2)
		}
	case FCMemoryFill:
		if in.Index >= m.NumMemories() {
			return bad("memory", in.Index)
		}
	case FCTableInit:
		if int(in.Index) >= len(m.Elements) {
			return bad("element segment", in.Index)
		}
		if in.Index2 >= m.NumTables() {
			return bad("table", in.Index2)
		}
	case FCElemDrop:
		if int(in.Index) >= len(m.Elements) {
			return bad("element segment", in.Index)
		}
	case FCTableCopy:
		if in.Index >= m.NumTables() {
			return bad("table", in.Index)
		}
		if in.Index2 >= m.NumTables() {
			return bad("table", in.Index2)
		}
	case FCTableGrow, FCTableSize, FCTableFill:
		if in.Index >= m.NumTables() {
			return bad("table", in.Index)
		}
	}
	return nil
}

// addrType is the address type of memory 0 (i64 for memory64).
func (p *parser) addrType() ValType {
	return (&typeChecker{m: p.m}).addrOf()
}
