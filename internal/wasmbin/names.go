package wasmbin

// The name section (a custom section named "name") gives debuggers and
// runtimes names for the module, its functions and locals (subsections 0, 1
// and 2) and, in the extended name section, for labels, types, tables,
// memories, globals, element and data segments (3 to 9). wazero decodes
// subsections 0 to 2 and fails to compile a module whose name section it
// cannot decode, so a module built from another keeps a name section only
// after DecodeNames accepted it.

// Name subsection ids.
const (
	NameModule    byte = 0
	NameFunctions byte = 1
	NameLocals    byte = 2
	NameLabels    byte = 3
)

// NameAssoc names one index.
type NameAssoc struct {
	Index uint32
	Name  string
}

// IndirectNameAssoc names the members (locals, labels) of one function.
type IndirectNameAssoc struct {
	Index uint32
	Names []NameAssoc
}

// NameSubsection is a subsection kept as its raw payload.
type NameSubsection struct {
	ID   byte
	Data []byte
}

// Names is a decoded name section.
type Names struct {
	Module    string
	HasModule bool
	// Funcs and Locals are the function and local names (nil when absent).
	Funcs  []NameAssoc
	Locals []IndirectNameAssoc
	// Other holds the subsections after 2, raw, in order.
	Other []NameSubsection
}

// DecodeNames decodes the payload of a name section (the bytes after the
// custom section's name). Subsections must come in increasing id order and
// each must fill exactly its declared size; names must be valid UTF-8.
func DecodeNames(data []byte) (*Names, error) {
	r := reader{b: data}
	n := &Names{}
	last := -1
	for !r.eof() {
		at := r.off()
		id, _ := r.byte()
		if int(id) <= last {
			return nil, malformed(at, "name subsection %d out of order or repeated", id)
		}
		last = int(id)
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		payload, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		sr := reader{b: payload, base: r.off() - len(payload)}
		switch id {
		case NameModule:
			if n.Module, err = sr.name(); err != nil {
				return nil, err
			}
			n.HasModule = true
		case NameFunctions:
			if n.Funcs, err = nameMap(&sr); err != nil {
				return nil, err
			}
			if n.Funcs == nil {
				n.Funcs = []NameAssoc{}
			}
		case NameLocals:
			cnt, err := sr.count(2)
			if err != nil {
				return nil, err
			}
			n.Locals = make([]IndirectNameAssoc, cnt)
			for i := range n.Locals {
				if n.Locals[i].Index, err = sr.u32(); err != nil {
					return nil, err
				}
				if n.Locals[i].Names, err = nameMap(&sr); err != nil {
					return nil, err
				}
			}
		default:
			n.Other = append(n.Other, NameSubsection{ID: id, Data: payload})
			continue
		}
		if !sr.eof() {
			return nil, malformed(sr.off(), "name subsection %d has %d bytes left over", id, sr.remaining())
		}
	}
	return n, nil
}

func nameMap(r *reader) ([]NameAssoc, error) {
	cnt, err := r.count(2)
	if err != nil {
		return nil, err
	}
	out := make([]NameAssoc, cnt)
	for i := range out {
		if out[i].Index, err = r.u32(); err != nil {
			return nil, err
		}
		if out[i].Name, err = r.name(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Encode writes the name section payload DecodeNames reads.
func (n *Names) Encode() []byte {
	var b []byte
	sub := func(id byte, payload []byte) {
		b = AppendU32(append(b, id), uint32(len(payload)))
		b = append(b, payload...)
	}
	if n.HasModule {
		sub(NameModule, AppendName(nil, n.Module))
	}
	if n.Funcs != nil {
		sub(NameFunctions, appendNameMap(nil, n.Funcs))
	}
	if n.Locals != nil {
		p := AppendU32(nil, uint32(len(n.Locals)))
		for _, l := range n.Locals {
			p = appendNameMap(AppendU32(p, l.Index), l.Names)
		}
		sub(NameLocals, p)
	}
	for _, o := range n.Other {
		sub(o.ID, o.Data)
	}
	return b
}

func appendNameMap(b []byte, m []NameAssoc) []byte {
	b = AppendU32(b, uint32(len(m)))
	for _, a := range m {
		b = AppendName(AppendU32(b, a.Index), a.Name)
	}
	return b
}
