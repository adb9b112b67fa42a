// coop: the counter with cooperative snapshots. Its state is the 8-byte
// little-endian count, so the host never copies linear memory for it.
import {
  Event, emitRaw, fail, onEvent, onRestore, onSnapshot, stateWrite,
} from "../../../sdk-guest/assemblyscript/assembly/index";
export {
  wasmesh_abi_v1, wasmesh_input, wasmesh_process, wasmesh_snapshot, wasmesh_restore,
} from "../../../sdk-guest/assemblyscript/assembly/index";

let count: u64 = 0;

function is(p: Uint8Array, s: string): bool {
  if (p.length != s.length) return false;
  for (let i = 0; i < p.length; i++) {
    if (<i32>p[i] != s.charCodeAt(i)) return false;
  }
  return true;
}

// Preallocated: the stub runtime never frees.
const digits = new Uint8Array(20);
const state = new Uint8Array(8);

function emitDecimal(v: u64): void {
  let i = 20;
  do {
    digits[--i] = <u8>(48 + v % 10);
    v /= 10;
  } while (v != 0);
  emitRaw(digits.dataStart + i, 20 - i);
}

onEvent((ev: Event): i32 => {
  if (is(ev.payload, "trap")) unreachable();
  if (!is(ev.payload, "get")) count++;
  emitDecimal(count);
  return 0;
});

onSnapshot((): i32 => {
  // wasm is little-endian, so a plain store is the wire format.
  store<u64>(state.dataStart, count);
  stateWrite(state);
  return 0;
});

onRestore((s: Uint8Array): i32 => {
  if (s.length != 8) return fail("coop: state must be 8 bytes");
  count = load<u64>(s.dataStart);
  return 0;
});
