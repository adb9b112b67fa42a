package wasmbin

// Encoding: Encode writes a module from a list of sections; each section's
// payload is either a parsed section's raw bytes (re-emitted byte for byte) or
// the output of one of the *Section builders below. The instrumenter parses a
// module, rebuilds the few sections it changes and keeps the rest.

// AppendU32 appends v as an unsigned LEB128.
func AppendU32(dst []byte, v uint32) []byte { return AppendU64(dst, uint64(v)) }

// AppendU64 appends v as an unsigned LEB128.
func AppendU64(dst []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

// AppendS32 appends v as a signed LEB128.
func AppendS32(dst []byte, v int32) []byte { return AppendS64(dst, int64(v)) }

// AppendS64 appends v as a signed LEB128.
func AppendS64(dst []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

// AppendName appends a length-prefixed name.
func AppendName(dst []byte, s string) []byte {
	dst = AppendU32(dst, uint32(len(s)))
	return append(dst, s...)
}

// ConstI32 is the constant expression "i32.const v; end".
func ConstI32(v int32) []byte { return append(AppendS32([]byte{OpI32Const}, v), OpEnd) }

// ConstI64 is the constant expression "i64.const v; end".
func ConstI64(v int64) []byte { return append(AppendS64([]byte{OpI64Const}, v), OpEnd) }

// ConstZero is a constant expression producing the zero value of t
// (ref.null for reference types).
func ConstZero(t ValType) []byte {
	switch t {
	case I32:
		return ConstI32(0)
	case I64:
		return ConstI64(0)
	case F32:
		return []byte{OpF32Const, 0, 0, 0, 0, OpEnd}
	case F64:
		return []byte{OpF64Const, 0, 0, 0, 0, 0, 0, 0, 0, OpEnd}
	case V128:
		b := append([]byte{OpPrefixFD}, AppendU32(nil, FDV128Const)...)
		return append(append(b, make([]byte, 16)...), OpEnd)
	}
	return []byte{OpRefNull, byte(t), OpEnd}
}

// Encode writes the module header and the sections in the order given.
func Encode(sections []Section) []byte {
	n := 8
	for _, s := range sections {
		n += 6 + len(s.Header) + len(s.Payload)
	}
	out := make([]byte, 0, n)
	out = append(out, Magic...)
	out = append(out, Version...)
	for _, s := range sections {
		if headerFits(s) {
			out = append(out, s.Header...)
		} else {
			out = append(out, s.ID)
			out = AppendU32(out, uint32(len(s.Payload)))
		}
		out = append(out, s.Payload...)
	}
	return out
}

// headerFits reports whether the section's original header still describes
// its payload.
func headerFits(s Section) bool {
	if len(s.Header) < 2 || s.Header[0] != s.ID {
		return false
	}
	r := reader{b: s.Header, pos: 1}
	n, err := r.u32()
	return err == nil && r.eof() && int(n) == len(s.Payload)
}

// Encode re-emits the module's sections. Unchanged sections are copied byte
// for byte, so Encode of a freshly parsed module returns its input.
func (m *Module) Encode() []byte { return Encode(m.Sections) }

// SetSection returns sections with s in place of the section with s's id, or
// with s inserted where the section order puts it. Custom sections are
// always appended.
func SetSection(sections []Section, s Section) []Section {
	out := make([]Section, 0, len(sections)+1)
	if s.ID == SectionCustom {
		return append(append(out, sections...), s)
	}
	rank := sectionRank(s.ID)
	done := false
	for _, x := range sections {
		if !done && x.ID != SectionCustom {
			switch xr := sectionRank(x.ID); {
			case xr == rank:
				out = append(out, s)
				done = true
				continue
			case xr > rank:
				out = append(out, s)
				done = true
			}
		}
		out = append(out, x)
	}
	if !done {
		out = append(out, s)
	}
	return out
}

// RemoveSection returns sections without those for which drop reports true.
func RemoveSection(sections []Section, drop func(Section) bool) []Section {
	out := make([]Section, 0, len(sections))
	for _, s := range sections {
		if !drop(s) {
			out = append(out, s)
		}
	}
	return out
}

func built(id byte, payload []byte) Section {
	return Section{ID: id, Offset: -1, PayloadOffset: -1, Payload: payload}
}

func appendValTypes(b []byte, ts []ValType) []byte {
	b = AppendU32(b, uint32(len(ts)))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}

func appendLimits(b []byte, l Limits) []byte {
	var flags byte
	if l.HasMax {
		flags |= 1
	}
	if l.Shared {
		flags |= 2
	}
	if l.Memory64 {
		flags |= 4
	}
	b = append(b, flags)
	b = AppendU64(b, l.Min)
	if l.HasMax {
		b = AppendU64(b, l.Max)
	}
	return b
}

func appendGlobalType(b []byte, g GlobalType) []byte {
	b = append(b, byte(g.Type))
	if g.Mutable {
		return append(b, 1)
	}
	return append(b, 0)
}

// CustomSection builds a custom section.
func CustomSection(name string, data []byte) Section {
	s := built(SectionCustom, append(AppendName(nil, name), data...))
	s.Name = name
	return s
}

// TypeSection builds a type section.
func TypeSection(types []FuncType) Section {
	b := AppendU32(nil, uint32(len(types)))
	for _, t := range types {
		b = append(b, 0x60)
		b = appendValTypes(b, t.Params)
		b = appendValTypes(b, t.Results)
	}
	return built(SectionType, b)
}

// ImportSection builds an import section.
func ImportSection(imports []Import) Section {
	b := AppendU32(nil, uint32(len(imports)))
	for _, im := range imports {
		b = AppendName(b, im.Module)
		b = AppendName(b, im.Name)
		b = append(b, byte(im.Kind))
		switch im.Kind {
		case KindFunc:
			b = AppendU32(b, im.TypeIndex)
		case KindTable:
			b = append(b, byte(im.Table.Elem))
			b = appendLimits(b, im.Table.Limits)
		case KindMemory:
			b = appendLimits(b, im.Memory)
		case KindGlobal:
			b = appendGlobalType(b, im.Global)
		}
	}
	return built(SectionImport, b)
}

// FunctionSection builds a function section from type indices.
func FunctionSection(typeIndices []uint32) Section {
	b := AppendU32(nil, uint32(len(typeIndices)))
	for _, t := range typeIndices {
		b = AppendU32(b, t)
	}
	return built(SectionFunction, b)
}

// TableSection builds a table section.
func TableSection(tables []TableType) Section {
	b := AppendU32(nil, uint32(len(tables)))
	for _, t := range tables {
		b = append(b, byte(t.Elem))
		b = appendLimits(b, t.Limits)
	}
	return built(SectionTable, b)
}

// MemorySection builds a memory section.
func MemorySection(mems []Limits) Section {
	b := AppendU32(nil, uint32(len(mems)))
	for _, l := range mems {
		b = appendLimits(b, l)
	}
	return built(SectionMemory, b)
}

// GlobalSection builds a global section.
func GlobalSection(globals []Global) Section {
	b := AppendU32(nil, uint32(len(globals)))
	for _, g := range globals {
		b = appendGlobalType(b, g.Type)
		b = append(b, g.Init...)
	}
	return built(SectionGlobal, b)
}

// ExportSection builds an export section.
func ExportSection(exports []Export) Section {
	b := AppendU32(nil, uint32(len(exports)))
	for _, e := range exports {
		b = AppendName(b, e.Name)
		b = append(b, byte(e.Kind))
		b = AppendU32(b, e.Index)
	}
	return built(SectionExport, b)
}

// StartSection builds a start section.
func StartSection(funcIndex uint32) Section {
	return built(SectionStart, AppendU32(nil, funcIndex))
}

// ElementSection builds an element section from the segments' Raw bytes.
func ElementSection(elems []Element) Section {
	b := AppendU32(nil, uint32(len(elems)))
	for _, e := range elems {
		b = append(b, e.Raw...)
	}
	return built(SectionElement, b)
}

// ActiveFuncElement builds an active element segment that writes the given
// functions into table 0 at the offset of the constant expression.
func ActiveFuncElement(offset []byte, funcs []uint32) Element {
	raw := append([]byte{0}, offset...)
	raw = AppendU32(raw, uint32(len(funcs)))
	for _, f := range funcs {
		raw = AppendU32(raw, f)
	}
	return Element{Mode: ModeActive, Offset: offset, Type: FuncRef, Count: len(funcs), Raw: raw}
}

// DataCountSection builds a data count section.
func DataCountSection(n uint32) Section {
	return built(SectionDataCount, AppendU32(nil, n))
}

// CodeSection builds a code section from each body's Locals and Body (Raw is
// ignored).
func CodeSection(codes []Code) Section {
	b := AppendU32(nil, uint32(len(codes)))
	var entry []byte
	for _, c := range codes {
		entry = AppendU32(entry[:0], uint32(len(c.Locals)))
		for _, l := range c.Locals {
			entry = AppendU32(entry, l.Count)
			entry = append(entry, byte(l.Type))
		}
		entry = append(entry, c.Body...)
		b = AppendU32(b, uint32(len(entry)))
		b = append(b, entry...)
	}
	return built(SectionCode, b)
}

// DataSection builds a data section from each segment's Mode, Memory, Offset
// and Init (Raw is ignored).
func DataSection(data []Data) Section {
	b := AppendU32(nil, uint32(len(data)))
	for _, d := range data {
		switch {
		case d.Mode == ModePassive:
			b = append(b, 1)
		case d.Memory == 0:
			b = append(b, 0)
			b = append(b, d.Offset...)
		default:
			b = append(b, 2)
			b = AppendU32(b, d.Memory)
			b = append(b, d.Offset...)
		}
		b = AppendU32(b, uint32(len(d.Init)))
		b = append(b, d.Init...)
	}
	return built(SectionData, b)
}
