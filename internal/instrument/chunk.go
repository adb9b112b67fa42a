package instrument

import "github.com/wasmesh/wasmesh/internal/wasmbin"

// # Chunked fills and copies
//
// A charge before the instruction (see "Bulk instructions") bounds how many
// bulk bytes run between two stop checks across instructions, but one
// memory.fill or memory.copy of up to 4 GiB would still run to its end once
// charged. So every memory.fill and memory.copy whose count is not a small
// constant becomes a call of an appended helper, $fill or $copy, that does
// the same work in chunks of ChunkBytes and charges each chunk before doing
// it (the $charge sequence, inlined): it then reaches $yield (the stop check) between every two chunks.
//
// The helpers keep the instruction's semantics exactly. A count of at most
// one chunk is done by the native instruction; above that:
//
//   - bounds first: nothing is written when the operation is out of bounds.
//     A zero-length op at the end (memory.fill(d+n, 0, 0), memory.copy(d+n,
//     s+n, 0)) traps exactly when an end is past the memory size, with the
//     instruction's own trap; an end that wraps past 2^32 is out of bounds
//     whatever the size, and an i32.load at 2^32 (address -1, offset 1),
//     out of bounds in every wasm32 memory, raises the same trap for it;
//   - the memory can only grow meanwhile ($yield grows it by 0), so the
//     bounds checked first hold for every chunk;
//   - memory.copy copies chunk by chunk forward when dst <= src and backward
//     (last chunk first) otherwise, so an overlapping copy reads every source
//     byte before it is overwritten, as the one instruction does; within a
//     chunk the native instruction handles the overlap.
//
// Every byte is charged once: a count of at most one chunk by a $charge
// call in place (see chunkSite), as any bulk instruction, and a larger one
// chunk by chunk by the helper only.
//
// memory.init, table.fill, table.copy and table.init keep the charge
// before: a data segment is at most abi.MaxDataBytes (64 MiB, a few
// milliseconds of memcpy), and a table operation at most the table cap
// (Options.MaxTableEntries, the memory limit's worth of 8-byte entries), so
// one of them overshoots a budget by no more than a memory-limit-sized
// memcpy.

// pairSig is the block type of chunkSite's if: the two operands below the
// count.
var pairSig = wasmbin.FuncType{Params: []wasmbin.ValType{wasmbin.I32, wasmbin.I32}}

// chunkSite appends what replaces a memory.fill or memory.copy (native, its
// bytes): a count of at most one chunk is charged ($charge, one call, as
// for any bulk instruction) and done natively in place; a larger one goes
// to helper h. The count is held in local t (a local the instrumenter
// adds to the function) across the test:
//
//	local.set $t
//	local.get $t; i32.const ChunkBytes; i32.le_u
//	if [i32 i32] -> []
//	  local.get $t; i32.const 0; call $charge; native
//	else
//	  local.get $t; call h
//	end
func chunkSite(out []byte, ix indices, h, t uint32, native []byte) []byte {
	out = wasmbin.AppendU32(append(out, wasmbin.OpLocalSet), t)
	out = wasmbin.AppendU32(append(out, wasmbin.OpLocalGet), t)
	out = wasmbin.AppendS32(append(out, wasmbin.OpI32Const), ChunkBytes)
	out = wasmbin.AppendS32(append(out, opI32LeU, wasmbin.OpIf), int32(ix.pairType))
	out = wasmbin.AppendU32(append(out, wasmbin.OpLocalGet), t)
	out = wasmbin.AppendU32(append(out, wasmbin.OpI32Const, 0, wasmbin.OpCall), ix.charge)
	out = append(out, native...)
	out = wasmbin.AppendU32(append(out, wasmbin.OpElse, wasmbin.OpLocalGet), t)
	out = wasmbin.AppendU32(append(out, wasmbin.OpCall), h)
	return append(out, wasmbin.OpEnd)
}

// ChunkBytes is the work a $fill or $copy helper does between two charges.
const ChunkBytes = ChargeYield

// helperSig is the type of $fill (dst, value, n) and $copy (dst, src, n).
var helperSig = wasmbin.FuncType{Params: []wasmbin.ValType{wasmbin.I32, wasmbin.I32, wasmbin.I32}}

// Opcodes the helper bodies use that wasmbin does not name.
const (
	opI32Load = 0x28
	opI32LtU  = 0x49
	opI32LeU  = 0x4d
)

// chunkHelper returns the helper that replaces in (ix.fill or ix.copy), or
// 0 when in keeps its native form.
func chunkHelper(ix indices, in wasmbin.Instr) uint32 {
	if in.Op != wasmbin.OpPrefixFC {
		return 0
	}
	switch in.Sub {
	case wasmbin.FCMemoryFill:
		return ix.fill
	case wasmbin.FCMemoryCopy:
		return ix.copy
	}
	return 0
}

// hasChunked reports whether any function has a memory.fill or memory.copy.
func hasChunked(m *wasmbin.Module) bool {
	for _, c := range m.Codes {
		for off := 0; off < len(c.Body); {
			in, err := wasmbin.DecodeInstr(c.Body, off)
			if err != nil {
				return false
			}
			if in.Op == wasmbin.OpPrefixFC && (in.Sub == wasmbin.FCMemoryFill || in.Sub == wasmbin.FCMemoryCopy) {
				return true
			}
			off = in.End
		}
	}
	return false
}

// helper body builder: a few shorthands over raw bytes.
type hb []byte

func (b hb) get(l byte) hb     { return append(b, wasmbin.OpLocalGet, l) }
func (b hb) set(l byte) hb     { return append(b, wasmbin.OpLocalSet, l) }
func (b hb) i32(v int32) hb    { return wasmbin.AppendS32(append(b, wasmbin.OpI32Const), v) }
func (b hb) op(ops ...byte) hb { return append(b, ops...) }
func (b hb) call(f uint32) hb  { return wasmbin.AppendU32(append(b, wasmbin.OpCall), f) }
func (b hb) fill() hb          { return append(b, wasmbin.OpPrefixFC, byte(wasmbin.FCMemoryFill), 0) }
func (b hb) copy() hb          { return append(b, wasmbin.OpPrefixFC, byte(wasmbin.FCMemoryCopy), 0, 0) }
func (b hb) add(l byte) hb     { return b.get(l).i32(ChunkBytes).op(wasmbin.OpI32Add).set(l) }
func (b hb) sub(l byte) hb     { return b.get(l).i32(ChunkBytes).op(wasmbin.OpI32Sub).set(l) }
func (b hb) end(l byte) hb     { return b.get(l).get(2).op(wasmbin.OpI32Add) } // local l + n
// charge is $charge(n, 0) inlined: $spent += n; if $spent >= ChargeYield
// { $spent = 0; call $yield }. Inline, a small copy with a runtime count
// costs one call (to the helper), as it did with $charge before it.
func (b hb) charge(ix indices, n func(hb) hb) hb {
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalGet), ix.spent)
	b = n(b).op(0xad /* i64.extend_i32_u */, wasmbin.OpI64Add)
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalSet), ix.spent)
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalGet), ix.spent)
	b = wasmbin.AppendS64(append(b, wasmbin.OpI64Const), ChargeYield)
	b = b.op(0x5a /* i64.ge_u */, wasmbin.OpIf, 0x40, wasmbin.OpI64Const, 0)
	b = wasmbin.AppendU32(append(b, wasmbin.OpGlobalSet), ix.spent)
	return b.call(ix.yield).op(wasmbin.OpEnd)
}

// trapIfWraps traps out of bounds when local l + n wraps past 2^32.
func (b hb) trapIfWraps(l byte) hb {
	b = b.end(l).get(l).op(opI32LtU, wasmbin.OpIf, 0x40)
	b = b.i32(-1).op(opI32Load, 0, 1, wasmbin.OpDrop, wasmbin.OpUnreachable, wasmbin.OpEnd)
	return b
}

// chunks emits: while n > ChunkBytes { charge(ChunkBytes); step }.
func (b hb) chunks(ix indices, step func(hb) hb) hb {
	b = b.op(wasmbin.OpBlock, 0x40, wasmbin.OpLoop, 0x40)
	b = b.get(2).i32(ChunkBytes).op(opI32LeU, wasmbin.OpBrIf, 1)
	b = b.charge(ix, func(b hb) hb { return b.i32(ChunkBytes) })
	b = step(b)
	return b.op(wasmbin.OpBr, 0, wasmbin.OpEnd, wasmbin.OpEnd)
}

func chargeN(b hb) hb { return b.get(2) }

// small emits the fast path: a count of at most one chunk is charged and
// done by the native instruction, whose own bounds check is then exact.
func (b hb) small(ix indices, native func(hb) hb) hb {
	b = b.get(2).i32(ChunkBytes).op(opI32LeU, wasmbin.OpIf, 0x40)
	b = native(b.charge(ix, chargeN).get(0).get(1).get(2))
	return b.op(wasmbin.OpReturn, wasmbin.OpEnd)
}

// fillBody is $fill(d, v, n) (see "Chunked fills and copies").
func fillBody(ix indices) []byte {
	b := hb(nil).small(ix, hb.fill).trapIfWraps(0)
	b = b.end(0).i32(0).i32(0).fill()
	b = b.chunks(ix, func(b hb) hb {
		return b.get(0).get(1).i32(ChunkBytes).fill().add(0).sub(2)
	})
	b = b.charge(ix, chargeN).get(0).get(1).get(2).fill()
	return b.op(wasmbin.OpEnd)
}

// copyBody is $copy(d, s, n) (see "Chunked fills and copies").
func copyBody(ix indices) []byte {
	b := hb(nil).small(ix, hb.copy).trapIfWraps(0).trapIfWraps(1)
	b = b.end(0).end(1).i32(0).copy()
	b = b.get(0).get(1).op(opI32LeU, wasmbin.OpIf, 0x40)
	b = b.chunks(ix, func(b hb) hb { // forward
		return b.get(0).get(1).i32(ChunkBytes).copy().add(0).add(1).sub(2)
	})
	b = b.op(wasmbin.OpElse)
	b = b.chunks(ix, func(b hb) hb { // backward: the last chunk first
		return b.sub(2).end(0).end(1).i32(ChunkBytes).copy()
	})
	b = b.op(wasmbin.OpEnd)
	b = b.charge(ix, chargeN).get(0).get(1).get(2).copy()
	return b.op(wasmbin.OpEnd)
}
