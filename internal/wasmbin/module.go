// Package wasmbin is a strict, bounded parser, instruction decoder and
// encoder for the WebAssembly core-module binary format (version 1, with the
// WebAssembly 2.0 features plus tail calls).
//
// It checks the structure of a module — section order, LEB128 encodings,
// vector counts against the bytes that remain, index bounds, constant
// expressions, block nesting in every function body, reserved zero bytes,
// memarg alignment and lane indices — and validates it: every body and
// constant expression is type-checked (typecheck.go, the spec's validation
// algorithm). It refuses every binary the spec suite's assert_malformed and
// assert_invalid cases hold (internal/instrument's TestSpecSuite checks it), and
// refuses as ErrUnsupported the constructs of proposals wasmesh does not
// run. Validation failures wrap ErrMalformed too: to a caller both mean
// "not a module wasmesh can load". Every
// allocation is bounded by the size of the input, so hostile bytes cost at
// most time linear in their length.
//
// Parsed sections keep their raw payloads, so an encoder can re-emit the
// sections it did not change byte for byte (see Encode).
//
// The package deliberately imports nothing from wasmesh: abi builds on it.
package wasmbin

// MaxModuleSize is the largest module Parse accepts.
const MaxModuleSize = 256 << 20

// Magic and Version start every module.
var (
	Magic   = []byte{0x00, 'a', 's', 'm'}
	Version = []byte{0x01, 0x00, 0x00, 0x00}
)

// Section ids.
const (
	SectionCustom    byte = 0
	SectionType      byte = 1
	SectionImport    byte = 2
	SectionFunction  byte = 3
	SectionTable     byte = 4
	SectionMemory    byte = 5
	SectionGlobal    byte = 6
	SectionExport    byte = 7
	SectionStart     byte = 8
	SectionElement   byte = 9
	SectionCode      byte = 10
	SectionData      byte = 11
	SectionDataCount byte = 12
	SectionTag       byte = 13
)

// sectionRank gives the required order of non-custom sections; 0 means
// unknown.
func sectionRank(id byte) int {
	switch id {
	case SectionType:
		return 1
	case SectionImport:
		return 2
	case SectionFunction:
		return 3
	case SectionTable:
		return 4
	case SectionMemory:
		return 5
	case SectionTag:
		return 6
	case SectionGlobal:
		return 7
	case SectionExport:
		return 8
	case SectionStart:
		return 9
	case SectionElement:
		return 10
	case SectionDataCount:
		return 11
	case SectionCode:
		return 12
	case SectionData:
		return 13
	}
	return 0
}

// ValType is a value type as its binary encoding (abi.ValType is an alias).
type ValType byte

// Value types.
const (
	I32       ValType = 0x7f
	I64       ValType = 0x7e
	F32       ValType = 0x7d
	F64       ValType = 0x7c
	V128      ValType = 0x7b
	FuncRef   ValType = 0x70
	ExternRef ValType = 0x6f
)

// ValidValType reports whether t is a value type of WebAssembly 2.0.
func ValidValType(t ValType) bool {
	switch t {
	case I32, I64, F32, F64, V128, FuncRef, ExternRef:
		return true
	}
	return false
}

// badType is the error for a byte that is not a value type (of the kind
// what names) at module offset at: unsupported when it is a type of a
// proposal wasmesh does not run (typed function references, GC,
// exceptions), else malformed.
func badType(at int, what string, c byte) error {
	switch {
	case c == 0x63 || c == 0x64:
		return unsupported(at, "%s 0x%02x (typed function references)", what, c)
	case c == 0x69 || c == 0x74:
		return unsupported(at, "%s 0x%02x (exception handling)", what, c)
	case c >= 0x6a && c <= 0x6e || c >= 0x71 && c <= 0x73:
		return unsupported(at, "%s 0x%02x (GC)", what, c)
	}
	return malformed(at, "invalid %s 0x%02x", what, c)
}

// IsRef reports whether t is a reference type.
func (t ValType) IsRef() bool { return t == FuncRef || t == ExternRef }

func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	case V128:
		return "v128"
	case FuncRef:
		return "funcref"
	case ExternRef:
		return "externref"
	}
	return "unknown"
}

// FuncType is a function signature.
type FuncType struct {
	Params  []ValType
	Results []ValType
}

// ExternKind is the kind of an import or export.
type ExternKind byte

// Extern kinds.
const (
	KindFunc   ExternKind = 0
	KindTable  ExternKind = 1
	KindMemory ExternKind = 2
	KindGlobal ExternKind = 3
)

func (k ExternKind) String() string {
	switch k {
	case KindFunc:
		return "func"
	case KindTable:
		return "table"
	case KindMemory:
		return "memory"
	case KindGlobal:
		return "global"
	}
	return "unknown"
}

// Limits bound a table or memory. Memory64 limits may exceed 32 bits; all
// others fit in a uint32.
type Limits struct {
	Min, Max uint64
	HasMax   bool
	Shared   bool // memory only (threads proposal)
	Memory64 bool // memory only (memory64 proposal)
}

// TableType is a table's element type and limits.
type TableType struct {
	Elem   ValType // FuncRef or ExternRef
	Limits Limits
}

// GlobalType is a global's value type and mutability.
type GlobalType struct {
	Type    ValType
	Mutable bool
}

// Import is one import. Exactly one of TypeIndex (KindFunc), Table
// (KindTable), Memory (KindMemory) and Global (KindGlobal) is meaningful.
type Import struct {
	Module, Name string
	Kind         ExternKind
	TypeIndex    uint32
	Table        TableType
	Memory       Limits
	Global       GlobalType
}

// Global is a defined global: its type and its constant initializer
// expression, including the final end opcode.
type Global struct {
	Type GlobalType
	Init []byte
}

// Export is one export.
type Export struct {
	Name  string
	Kind  ExternKind
	Index uint32
}

// ElemMode says when an element or data segment is applied.
type ElemMode byte

// Segment modes.
const (
	ModeActive      ElemMode = 0
	ModePassive     ElemMode = 1
	ModeDeclarative ElemMode = 2
)

// Element is an element segment. Raw is its whole encoding.
type Element struct {
	Mode   ElemMode
	Table  uint32
	Offset []byte // constant expression (active segments)
	Type   ValType
	Count  int // number of elements
	Raw    []byte
}

// Data is a data segment. Raw is its whole encoding.
type Data struct {
	Mode   ElemMode // ModeActive or ModePassive
	Memory uint32
	Offset []byte // constant expression (active segments)
	Init   []byte
	Raw    []byte
}

// LocalDecl declares Count locals of one type.
type LocalDecl struct {
	Count uint32
	Type  ValType
}

// Code is one function body.
type Code struct {
	Locals []LocalDecl
	// Body is the instruction sequence, including the final end opcode.
	Body []byte
	// BodyOffset is the module offset of Body[0].
	BodyOffset int
	// Raw is the whole entry after its size prefix (locals and body).
	Raw []byte
}

// Section is one section as it appears in the module. Payload aliases the
// parsed bytes.
type Section struct {
	ID   byte
	Name string // custom sections only
	// Offset is the module offset of the section id byte; PayloadOffset of
	// Payload[0]. Both are -1 for sections built by an encoder.
	Offset, PayloadOffset int
	Payload               []byte
	// Header is the id and size bytes as they appeared in the input (a
	// producer may pad the size LEB128); nil for built sections. Encode uses
	// it only while it still encodes len(Payload).
	Header []byte
}

// Custom is a custom section: its name and the bytes after the name.
type Custom struct {
	Name string
	Data []byte
}

// Module is a parsed module. Index spaces follow the spec: imported entities
// come first, then the defined ones.
type Module struct {
	Types    []FuncType
	Imports  []Import
	Funcs    []uint32 // type index of each defined function
	Tables   []TableType
	Memories []Limits
	Globals  []Global
	Exports  []Export
	Start    *uint32
	Elements []Element
	// DataCount is the datacount section's value, when present.
	DataCount *uint32
	Codes     []Code
	Data      []Data
	Customs   []Custom

	// Sections lists every section in order, with its raw payload.
	Sections []Section

	// Counts of imported entities, per kind.
	ImportedFuncs, ImportedTables, ImportedMemories, ImportedGlobals uint32
}

// NumFuncs is the size of the function index space.
func (m *Module) NumFuncs() uint32 { return m.ImportedFuncs + uint32(len(m.Funcs)) }

// NumTables is the size of the table index space.
func (m *Module) NumTables() uint32 { return m.ImportedTables + uint32(len(m.Tables)) }

// NumMemories is the size of the memory index space.
func (m *Module) NumMemories() uint32 { return m.ImportedMemories + uint32(len(m.Memories)) }

// NumGlobals is the size of the global index space.
func (m *Module) NumGlobals() uint32 { return m.ImportedGlobals + uint32(len(m.Globals)) }

// FuncType returns the type of function idx in the function index space.
func (m *Module) FuncType(idx uint32) (FuncType, bool) {
	var ti uint32
	if idx < m.ImportedFuncs {
		n := uint32(0)
		found := false
		for _, im := range m.Imports {
			if im.Kind != KindFunc {
				continue
			}
			if n == idx {
				ti, found = im.TypeIndex, true
				break
			}
			n++
		}
		if !found {
			return FuncType{}, false
		}
	} else if idx-m.ImportedFuncs < uint32(len(m.Funcs)) {
		ti = m.Funcs[idx-m.ImportedFuncs]
	} else {
		return FuncType{}, false
	}
	if int(ti) >= len(m.Types) {
		return FuncType{}, false
	}
	return m.Types[ti], true
}

// GlobalType returns the type of global idx in the global index space.
func (m *Module) GlobalType(idx uint32) (GlobalType, bool) {
	if idx < m.ImportedGlobals {
		n := uint32(0)
		for _, im := range m.Imports {
			if im.Kind != KindGlobal {
				continue
			}
			if n == idx {
				return im.Global, true
			}
			n++
		}
		return GlobalType{}, false
	}
	if idx-m.ImportedGlobals < uint32(len(m.Globals)) {
		return m.Globals[idx-m.ImportedGlobals].Type, true
	}
	return GlobalType{}, false
}

// globalTypes lists the types of the whole global index space.
func (m *Module) globalTypes() []GlobalType {
	out := make([]GlobalType, 0, m.NumGlobals())
	for _, im := range m.Imports {
		if im.Kind == KindGlobal {
			out = append(out, im.Global)
		}
	}
	for _, g := range m.Globals {
		out = append(out, g.Type)
	}
	return out
}

// Section returns the first section with the given id, or nil.
func (m *Module) Section(id byte) *Section {
	for i := range m.Sections {
		if m.Sections[i].ID == id {
			return &m.Sections[i]
		}
	}
	return nil
}
