package wasmbin

// Opcodes the rest of wasmesh refers to by name. The decoder knows all of
// WebAssembly 2.0 plus tail calls; see DecodeInstr.
const (
	OpUnreachable        byte = 0x00
	OpNop                byte = 0x01
	OpBlock              byte = 0x02
	OpLoop               byte = 0x03
	OpIf                 byte = 0x04
	OpElse               byte = 0x05
	OpEnd                byte = 0x0b
	OpBr                 byte = 0x0c
	OpBrIf               byte = 0x0d
	OpBrTable            byte = 0x0e
	OpReturn             byte = 0x0f
	OpCall               byte = 0x10
	OpCallIndirect       byte = 0x11
	OpReturnCall         byte = 0x12
	OpReturnCallIndirect byte = 0x13
	OpDrop               byte = 0x1a
	OpSelect             byte = 0x1b
	OpSelectT            byte = 0x1c
	OpLocalGet           byte = 0x20
	OpLocalSet           byte = 0x21
	OpLocalTee           byte = 0x22
	OpGlobalGet          byte = 0x23
	OpGlobalSet          byte = 0x24
	OpTableGet           byte = 0x25
	OpTableSet           byte = 0x26
	OpMemorySize         byte = 0x3f
	OpMemoryGrow         byte = 0x40
	OpI32Const           byte = 0x41
	OpI64Const           byte = 0x42
	OpF32Const           byte = 0x43
	OpF64Const           byte = 0x44
	OpI32Add             byte = 0x6a
	OpI32Sub             byte = 0x6b
	OpI32Mul             byte = 0x6c
	OpI64Add             byte = 0x7c
	OpI64Sub             byte = 0x7d
	OpI64Mul             byte = 0x7e
	OpRefNull            byte = 0xd0
	OpRefIsNull          byte = 0xd1
	OpRefFunc            byte = 0xd2
	OpPrefixFC           byte = 0xfc // saturating truncation, bulk memory, table ops
	OpPrefixFD           byte = 0xfd // SIMD
	OpPrefixFE           byte = 0xfe // threads (unsupported)
)

// Sub-opcodes after OpPrefixFC.
const (
	FCMemoryInit uint32 = 8
	FCDataDrop   uint32 = 9
	FCMemoryCopy uint32 = 10
	FCMemoryFill uint32 = 11
	FCTableInit  uint32 = 12
	FCElemDrop   uint32 = 13
	FCTableCopy  uint32 = 14
	FCTableGrow  uint32 = 15
	FCTableSize  uint32 = 16
	FCTableFill  uint32 = 17
)

// FDV128Const is the SIMD sub-opcode of v128.const.
const FDV128Const uint32 = 0x0c

// Block types that are not type indices, as DecodeInstr reports them
// (the s33 value of the single-byte encoding).
const (
	BlockEmpty int64 = -64 // 0x40
)

// Instr is one decoded instruction. Offsets are relative to the slice given
// to DecodeInstr; code[Offset:End] is the whole instruction.
type Instr struct {
	Op  byte
	Sub uint32 // sub-opcode after a 0xFC or 0xFD prefix
	// Offset of the first byte and just past the last immediate.
	Offset, End int
	// Index is the first index immediate: label (br, br_if), function (call,
	// return_call, ref.func), type (call_indirect), local, global, table
	// (table.*), memory (loads, stores, memory.*), data (memory.init,
	// data.drop), element (table.init, elem.drop).
	Index uint32
	// Index2 is the second index immediate: the table of call_indirect, the
	// memory of memory.init, the table of table.init, the source of
	// table.copy and memory.copy. For br_table, Index is the default label
	// and Index2 the largest label.
	Index2 uint32
	// BlockType of block, loop and if: BlockEmpty, a negative value-type
	// code (-1 i32 … -17 externref), or a type index (>= 0).
	BlockType int64
	// Lane is the lane immediate of SIMD lane instructions.
	Lane byte
	// Offset64 is the memarg offset of loads and stores.
	Offset64 uint64
}

// IsTableMutation reports whether the instruction changes a table or an
// element segment's state (table.set, table.grow, table.fill, table.copy,
// table.init, elem.drop).
func (in Instr) IsTableMutation() bool {
	if in.Op == OpTableSet {
		return true
	}
	if in.Op != OpPrefixFC {
		return false
	}
	switch in.Sub {
	case FCTableInit, FCElemDrop, FCTableCopy, FCTableGrow, FCTableFill:
		return true
	}
	return false
}

// DecodeInstr decodes the instruction starting at code[off]. Errors wrap
// ErrMalformed or ErrUnsupported and carry an offset relative to code.
func DecodeInstr(code []byte, off int) (Instr, error) {
	r := reader{b: code, pos: off}
	return decodeInstr(&r)
}

// immediates of one-byte opcodes.
const (
	immNone = iota
	immBlock
	immIndex   // one u32
	immIndex2  // two u32
	immBrTable // vec(u32) u32
	immMemarg
	immSelectT
	immI32
	immI64
	immF32
	immF64
	immRefType
	immZero        // a reserved 0x00 byte (a memory index under multi-memory)
	immBad         // unassigned
	immUnsupported // assigned to an unsupported proposal
)

var oneByteImm [256]byte

func init() {
	for i := range oneByteImm {
		oneByteImm[i] = immBad
	}
	set := func(lo, hi int, k byte) {
		for i := lo; i <= hi; i++ {
			oneByteImm[i] = k
		}
	}
	set(0x00, 0x01, immNone)
	set(0x02, 0x04, immBlock)
	oneByteImm[0x05] = immNone
	set(0x06, 0x0a, immUnsupported) // exceptions: try, catch, throw, rethrow, throw_ref
	oneByteImm[0x0b] = immNone
	set(0x0c, 0x0d, immIndex)
	oneByteImm[0x0e] = immBrTable
	oneByteImm[0x0f] = immNone
	oneByteImm[0x10] = immIndex
	oneByteImm[0x11] = immIndex2
	oneByteImm[0x12] = immIndex
	oneByteImm[0x13] = immIndex2
	set(0x14, 0x15, immUnsupported) // call_ref, return_call_ref
	set(0x18, 0x19, immUnsupported) // delegate, catch_all
	set(0x1a, 0x1b, immNone)
	oneByteImm[0x1c] = immSelectT
	oneByteImm[0x1f] = immUnsupported // try_table
	set(0x20, 0x26, immIndex)
	set(0x28, 0x3e, immMemarg)
	set(0x3f, 0x40, immZero)
	oneByteImm[0x41] = immI32
	oneByteImm[0x42] = immI64
	oneByteImm[0x43] = immF32
	oneByteImm[0x44] = immF64
	set(0x45, 0xc4, immNone)
	oneByteImm[0xd0] = immRefType
	oneByteImm[0xd1] = immNone
	oneByteImm[0xd2] = immIndex
	set(0xd3, 0xd6, immUnsupported)   // typed function references
	oneByteImm[0xfb] = immUnsupported // GC
	oneByteImm[0xfe] = immUnsupported // threads
}

// proposalOf names the proposal an unsupported one-byte opcode belongs to.
func proposalOf(op byte) string {
	switch {
	case op == 0x14 || op == 0x15 || op >= 0xd3 && op <= 0xd6:
		return "typed function references"
	case op == 0xfb:
		return "GC"
	case op == 0xfe:
		return "threads"
	}
	return "exception handling"
}

// simdUnassigned lists the holes in the SIMD opcode space 0x00–0xff.
var simdUnassigned = map[uint32]bool{
	0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true,
	0xb2: true, 0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true,
	0xc6: true, 0xcf: true, 0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true,
	0xe2: true, 0xee: true,
}

func decodeInstr(r *reader) (Instr, error) {
	in := Instr{Offset: r.pos}
	at := r.off()
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	in.Op = op
	switch op {
	case OpPrefixFC:
		err = decodeFC(r, &in)
	case OpPrefixFD:
		err = decodeFD(r, &in)
	default:
		err = decodeOneByte(r, &in, at)
	}
	in.End = r.pos
	return in, err
}

func decodeOneByte(r *reader, in *Instr, at int) error {
	var err error
	switch oneByteImm[in.Op] {
	case immNone:
	case immBlock:
		in.BlockType, err = r.sleb(33)
		if err == nil && in.BlockType < 0 && in.BlockType != BlockEmpty && !ValidValType(ValType(in.BlockType&0x7f)) {
			err = badType(at, "block type", byte(in.BlockType&0x7f))
		}
	case immIndex:
		in.Index, err = r.u32()
	case immIndex2:
		if in.Index, err = r.u32(); err == nil {
			in.Index2, err = r.u32()
		}
	case immBrTable:
		var n int
		if n, err = r.count(1); err != nil {
			return err
		}
		for i := 0; i <= n && err == nil; i++ { // n targets and the default
			in.Index, err = r.u32()
			in.Index2 = max(in.Index2, in.Index)
		}
	case immMemarg:
		err = memarg(r, in, naturalAlign[in.Op-0x28])
	case immSelectT:
		var n int
		if n, err = r.count(1); err != nil {
			return err
		}
		if n != 1 {
			return malformed(at, "typed select needs exactly one type, has %d", n)
		}
		var t byte
		if t, err = r.byte(); err == nil && !ValidValType(ValType(t)) {
			err = badType(at, "value type", t)
		}
	case immI32:
		_, err = r.s32()
	case immI64:
		_, err = r.s64()
	case immF32:
		_, err = r.bytes(4)
	case immF64:
		_, err = r.bytes(8)
	case immRefType:
		var t byte
		if t, err = r.byte(); err == nil && !ValType(t).IsRef() {
			err = badType(at, "reference type", t)
		}
	case immZero:
		err = zeroByte(r)
	case immUnsupported:
		return unsupported(at, "opcode 0x%02x (%s)", in.Op, proposalOf(in.Op))
	default:
		return malformed(at, "illegal opcode 0x%02x", in.Op)
	}
	return err
}

// zeroByte reads the reserved byte of memory.size, memory.grow and the bulk
// memory instructions: exactly 0x00 (not a LEB128 of 0; multi-memory, which
// makes it a memory index, is not supported).
func zeroByte(r *reader) error {
	at := r.off()
	c, err := r.byte()
	if err == nil && c != 0 {
		err = malformed(at, "zero byte expected")
	}
	return err
}

// naturalAlign is log2 of the access size of each load and store (0x28 to
// 0x3e); a memarg may not promise more alignment than that.
var naturalAlign = [...]uint32{2, 3, 2, 3, 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 2, 3, 2, 3, 0, 1, 0, 1, 2}

// simdAlign is the same for the SIMD memory instructions, by sub-opcode.
var simdAlign = map[uint32]uint32{
	0x00: 4, 0x01: 3, 0x02: 3, 0x03: 3, 0x04: 3, 0x05: 3, 0x06: 3, 0x07: 0, 0x08: 1, 0x09: 2, 0x0a: 3, 0x0b: 4,
	0x5c: 2, 0x5d: 3, 0x54: 0, 0x55: 1, 0x56: 2, 0x57: 3, 0x58: 0, 0x59: 1, 0x5a: 2, 0x5b: 3,
}

// memarg reads align and offset, both u32 (a 32-bit memory: offsets of
// memory64 are refused with it). Bit 6 of align would announce a memory
// index (multi-memory), which is not supported; an alignment above the
// access's natural one is invalid.
func memarg(r *reader, in *Instr, natural uint32) error {
	at := r.off()
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		return unsupported(at, "memory index in a memarg (multi-memory)")
	}
	if align > natural {
		return malformed(at, "alignment 2^%d larger than natural (2^%d)", align, natural)
	}
	off, err := r.u32()
	in.Offset64 = uint64(off)
	return err
}

// lane reads a lane index below n.
func lane(r *reader, in *Instr, n byte) error {
	at := r.off()
	var err error
	if in.Lane, err = r.byte(); err == nil && in.Lane >= n {
		err = malformed(at, "lane index %d out of range (%d lanes)", in.Lane, n)
	}
	return err
}

func decodeFC(r *reader, in *Instr) error {
	at := r.off()
	sub, err := r.u32()
	if err != nil {
		return err
	}
	in.Sub = sub
	switch {
	case sub <= 7: // saturating truncation
		return nil
	case sub == FCMemoryInit: // data index, reserved byte
		if in.Index, err = r.u32(); err != nil {
			return err
		}
		return zeroByte(r)
	case sub == FCMemoryCopy: // two reserved bytes
		if err = zeroByte(r); err != nil {
			return err
		}
		return zeroByte(r)
	case sub == FCMemoryFill:
		return zeroByte(r)
	case sub == FCTableInit, sub == FCTableCopy:
		if in.Index, err = r.u32(); err != nil {
			return err
		}
		in.Index2, err = r.u32()
		return err
	case sub == FCDataDrop, sub == FCElemDrop,
		sub == FCTableGrow, sub == FCTableSize, sub == FCTableFill:
		in.Index, err = r.u32()
		return err
	}
	return malformed(at, "illegal opcode 0xfc %d", sub)
}

func decodeFD(r *reader, in *Instr) error {
	at := r.off()
	sub, err := r.u32()
	if err != nil {
		return err
	}
	in.Sub = sub
	switch {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads, stores, load_zero
		return memarg(r, in, simdAlign[sub])
	case sub == FDV128Const:
		_, err = r.bytes(16)
		return err
	case sub == 0x0d: // i8x16.shuffle: 16 lane indices
		var lanes []byte
		if lanes, err = r.bytes(16); err != nil {
			return err
		}
		for _, l := range lanes {
			if l >= 32 {
				return malformed(at, "shuffle lane index %d out of range", l)
			}
		}
		return nil
	case sub >= 0x15 && sub <= 0x22: // extract_lane / replace_lane
		return lane(r, in, [...]byte{16, 16, 16, 8, 8, 8, 4, 4, 2, 2, 4, 4, 2, 2}[sub-0x15])
	case sub >= 0x54 && sub <= 0x5b: // load*_lane / store*_lane
		if err = memarg(r, in, simdAlign[sub]); err != nil {
			return err
		}
		return lane(r, in, 16>>simdAlign[sub])
	case sub <= 0xff && !simdUnassigned[sub]:
		return nil
	case sub >= 0x100 && sub <= 0x113:
		return unsupported(at, "relaxed SIMD opcode 0xfd %d", sub)
	}
	return malformed(at, "illegal opcode 0xfd %d", sub)
}
