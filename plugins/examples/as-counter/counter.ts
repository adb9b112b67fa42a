// counter: the count is a module-level variable, so the host's transparent
// snapshots carry it. Every event adds one and emits the count in decimal;
// "get" only reads it; "trap" hits `unreachable` before touching it.
import { Event, emitRaw, onEvent } from "../../../sdk-guest/assemblyscript/assembly/index";
export { wasmesh_abi_v1, wasmesh_input, wasmesh_process } from "../../../sdk-guest/assemblyscript/assembly/index";

let count: u64 = 0;

function is(p: Uint8Array, s: string): bool {
  if (p.length != s.length) return false;
  for (let i = 0; i < p.length; i++) {
    if (<i32>p[i] != s.charCodeAt(i)) return false;
  }
  return true;
}

// Digits go into one preallocated buffer: the stub runtime never frees, so
// count.toString() per event would leak.
const digits = new Uint8Array(20);

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
