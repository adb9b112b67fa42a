package abi

import (
	"fmt"
)

// Module shape limits. A module above any of them is refused before it is
// compiled: the compiler's time and memory grow with these declarations
// (100M locals in a 123-byte module cost 2.5 GB and 6.6 s to compile), so
// bounding them bounds compilation. Each is far above what real guests use:
// the Go examples have 1,644 functions, at most 18 locals in one and 7,855
// in all; the Rust ones at most 15 in one. Measured with wazero's compiler:
// a function of 50,000 locals compiles in 2 ms, 100 of them (5M locals) in
// 150 ms and 40 MB, 100,000 empty functions in 1.3 s. Documented in
// abi/README.md.
const (
	MaxLocalsPerFunc  = 50_000
	MaxLocalsTotal    = 4_000_000 // sum over all functions
	MaxFunctions      = 200_000
	MaxTypes          = 1_000_000
	MaxGlobals        = 1_000_000
	MaxTables         = 100
	MaxTableInit      = 10_000_000 // entries of a table's initial size
	MaxElemSegments   = 100_000
	MaxElemEntries    = 10_000_000 // sum over all element segments
	MaxDataSegments   = 100_000
	MaxDataBytes      = 64 << 20 // sum over all data segments
	MaxCodeBytes      = 128 << 20
	MaxFuncBodyBytes  = 7_654_321 // same bound as the web engines'
	MaxNameBytes      = 1024      // import module/field and export names
	MaxImportsExports = 100_000
)

// limits adds a problem for every declaration above the module shape limits.
func (v *validator) limits() {
	m := v.m
	count := func(item string, n, max int) {
		if n > max {
			v.problem(item, "%d declared, the limit is %d", n, max)
		}
	}
	count("type section", len(m.Types), MaxTypes)
	count("function section", int(m.NumFuncs()), MaxFunctions)
	count("global section", len(m.Globals)+int(m.ImportedGlobals), MaxGlobals)
	count("table section", int(m.NumTables()), MaxTables)
	count("element section", len(m.Elements), MaxElemSegments)
	count("data section", len(m.Data), MaxDataSegments)
	count("import section", len(m.Imports), MaxImportsExports)
	count("export section", len(m.Exports), MaxImportsExports)
	for i, t := range m.Tables {
		if t.Limits.Min > MaxTableInit {
			v.problem(fmt.Sprintf("table %d", int(m.ImportedTables)+i), "initial size of %d entries, the limit is %d", t.Limits.Min, MaxTableInit)
		}
	}
	elems := 0
	for _, e := range m.Elements {
		elems += e.Count
	}
	if elems > MaxElemEntries {
		v.problem("element section", "%d entries in all segments, the limit is %d", elems, MaxElemEntries)
	}
	data := 0
	for _, d := range m.Data {
		data += len(d.Init)
	}
	if data > MaxDataBytes {
		v.problem("data section", "%d bytes in all segments, the limit is %d", data, MaxDataBytes)
	}
	code := 0
	for i, c := range m.Codes {
		fn := fmt.Sprintf("function %d", int(m.ImportedFuncs)+i)
		code += len(c.Raw)
		if len(c.Raw) > MaxFuncBodyBytes {
			v.problem(fn, "body of %d bytes, the limit is %d", len(c.Raw), MaxFuncBodyBytes)
		}
		locals := uint64(0)
		if int(m.Funcs[i]) < len(m.Types) {
			locals = uint64(len(m.Types[m.Funcs[i]].Params))
		}
		for _, l := range c.Locals {
			locals += uint64(l.Count)
		}
		if locals > MaxLocalsPerFunc {
			v.problem(fn, "%d locals (parameters included), the limit is %d", locals, MaxLocalsPerFunc)
		}
	}
	if total := v.totalLocals(); total > MaxLocalsTotal {
		v.problem("code section", "%d locals in all functions, the limit is %d", total, MaxLocalsTotal)
	}
	if code > MaxCodeBytes {
		v.problem("code section", "%d bytes, the limit is %d", code, MaxCodeBytes)
	}
	for _, im := range m.Imports {
		if len(im.Module) > MaxNameBytes || len(im.Name) > MaxNameBytes {
			v.problem(fmt.Sprintf("import %s.%s", clip(im.Module), clip(im.Name)), "name longer than %d bytes", MaxNameBytes)
		}
	}
	for _, e := range m.Exports {
		if len(e.Name) > MaxNameBytes {
			v.problem("export "+clip(e.Name), "name longer than %d bytes", MaxNameBytes)
		}
	}
}

func (v *validator) totalLocals() uint64 {
	var n uint64
	for i, c := range v.m.Codes {
		if int(v.m.Funcs[i]) < len(v.m.Types) {
			n += uint64(len(v.m.Types[v.m.Funcs[i]].Params))
		}
		for _, l := range c.Locals {
			n += uint64(l.Count)
		}
	}
	return n
}

// clip shortens a name a problem echoes, so a refusal of a 1 MB name is not
// itself 1 MB.
func clip(s string) string {
	const keep = 64
	if len(s) <= keep {
		return s
	}
	return fmt.Sprintf("%q…(%d bytes)", s[:keep], len(s))
}
