package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// tailCallGuest is an ABI v1 guest whose wasmesh_process counts to a
// million by tail recursion (return_call: the stack does not grow) and emits
// the count as 8 little-endian bytes; a two-byte payload instead tail-calls
// forever, with no loop anywhere.
func tailCallGuest() []byte {
	i32, i64 := wasmbin.I32, wasmbin.I64
	types := []wasmbin.FuncType{
		{}, // 0
		{Params: []wasmbin.ValType{i32}, Results: []wasmbin.ValType{i32}},                // 1 input
		{Params: []wasmbin.ValType{i64, i64, i32, i32}, Results: []wasmbin.ValType{i32}}, // 2 process
		{Params: []wasmbin.ValType{i32, i32}},                                            // 3 emit
		{Params: []wasmbin.ValType{i64, i64}, Results: []wasmbin.ValType{i64}},           // 4 count
		{Params: []wasmbin.ValType{i32}},                                                 // 5 forever
	}
	const emit, count, forever = 0, 3, 4
	countBody := []byte{wasmbin.OpLocalGet, 0, 0x50 /* i64.eqz */, wasmbin.OpIf, byte(i64),
		wasmbin.OpLocalGet, 1,
		wasmbin.OpElse,
		wasmbin.OpLocalGet, 0, wasmbin.OpI64Const, 1, wasmbin.OpI64Sub,
		wasmbin.OpLocalGet, 1, wasmbin.OpI64Const, 1, wasmbin.OpI64Add,
		wasmbin.OpReturnCall, count,
		wasmbin.OpEnd, wasmbin.OpEnd}
	foreverBody := []byte{wasmbin.OpLocalGet, 0, wasmbin.OpI32Const, 1, wasmbin.OpI32Add, wasmbin.OpReturnCall, forever, wasmbin.OpEnd}
	process := []byte{wasmbin.OpLocalGet, 3, wasmbin.OpI32Const, 2, 0x46 /* i32.eq */, wasmbin.OpIf, 0x40,
		wasmbin.OpI32Const, 0, wasmbin.OpCall, forever, wasmbin.OpEnd,
		wasmbin.OpI32Const, 0}
	process = wasmbin.AppendS64(append(process, wasmbin.OpI64Const), 1_000_000)
	process = append(process, wasmbin.OpI64Const, 0, wasmbin.OpCall, count,
		0x37 /* i64.store */, 3, 0,
		wasmbin.OpI32Const, 0, wasmbin.OpI32Const, 8, wasmbin.OpCall, emit,
		wasmbin.OpI32Const, 0, wasmbin.OpEnd)
	return wasmbin.Encode([]wasmbin.Section{
		wasmbin.TypeSection(types),
		wasmbin.ImportSection([]wasmbin.Import{{Module: "wasmesh", Name: "emit", Kind: wasmbin.KindFunc, TypeIndex: 3}}),
		wasmbin.FunctionSection([]uint32{0, 1, 4, 5, 2}),
		wasmbin.MemorySection([]wasmbin.Limits{{Min: 1}}),
		wasmbin.ExportSection([]wasmbin.Export{
			{Name: "memory", Kind: wasmbin.KindMemory},
			{Name: "wasmesh_abi_v1", Kind: wasmbin.KindFunc, Index: 1},
			{Name: "wasmesh_input", Kind: wasmbin.KindFunc, Index: 2},
			{Name: "wasmesh_process", Kind: wasmbin.KindFunc, Index: 5},
		}),
		wasmbin.CodeSection([]wasmbin.Code{
			{Body: []byte{wasmbin.OpEnd}},
			{Body: []byte{wasmbin.OpI32Const, 0x80, 0x08, wasmbin.OpEnd}},
			{Body: countBody},
			{Body: foreverBody},
			{Body: process},
		}),
	})
}

// TestTailCallGuest: a guest using tail calls, which the parser accepts,
// deploys and runs (the host's wazero enables the feature), and a guest
// that tail-calls forever is stopped within its budget like a loop.
func TestTailCallGuest(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"tail": tailCallGuest()})
	d := spawn(t, rt, "tail", engine.SpawnOptions{Limits: engine.Limits{EventTimeout: 100 * time.Millisecond}})
	out := send(t, d, "x")
	if len(out) != 1 || len(out[0]) != 8 || binary.LittleEndian.Uint64([]byte(out[0])) != 1_000_000 {
		t.Fatalf("outputs %q, want the count 1000000", out)
	}
	_, err := d.Deliver(context.Background(), engine.Event{Sender: 7, Seq: 2, Payload: []byte("xx")})
	if !errors.Is(err, engine.ErrEventTimeout) {
		t.Fatalf("endless tail recursion: %v, want ErrEventTimeout", err)
	}
	if out := send(t, d, "x"); len(out) != 1 {
		t.Fatalf("after the timeout: outputs %q", out)
	}
}
