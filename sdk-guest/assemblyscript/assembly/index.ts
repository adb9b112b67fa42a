// AssemblyScript guest SDK for wasmesh daemons (guest ABI v1).
//
// Only the entry file's exports become wasm exports, so a daemon re-exports
// the ABI functions from here and registers its handler:
//
//   import { Event, emit, onEvent } from "<path>/sdk-guest/assemblyscript/assembly/index";
//   export { wasmesh_abi_v1, wasmesh_input, wasmesh_process } from "<same path>";
//   onEvent((ev: Event): i32 => { emit(ev.payload); return 0; });
//
// Re-export wasmesh_init to receive the spawn config (onInit), and the pair
// wasmesh_snapshot / wasmesh_restore to opt into cooperative snapshots
// (onSnapshot / onRestore). Without that pair the host snapshots linear
// memory and globals, which already includes every module-level variable.
//
// Built with `--runtime stub` nothing is ever freed. The SDK therefore never
// allocates per event (the payload view and the Event object are reused, and
// strings for fail/log/publish go through one scratch buffer); daemons that
// must run long should do the same or build with `--runtime incremental`.

// @ts-ignore: decorator
@external("wasmesh", "emit") declare function host_emit(ptr: usize, len: i32): void;
// @ts-ignore: decorator
@external("wasmesh", "fail") declare function host_fail(ptr: usize, len: i32): void;
// @ts-ignore: decorator
@external("wasmesh", "log") declare function host_log(level: i32, ptr: usize, len: i32): void;
// @ts-ignore: decorator
@external("wasmesh", "state_write") declare function host_state_write(ptr: usize, len: i32): void;
// @ts-ignore: decorator
@external("wasmesh", "now") declare function host_now(): i64;
// @ts-ignore: decorator
@external("wasmesh", "random") declare function host_random(ptr: usize, len: i32): void;
// @ts-ignore: decorator
@external("wasmesh", "self") declare function host_self(ptr: usize): void;
// @ts-ignore: decorator
@external("wasmesh", "publish") declare function host_publish(chPtr: usize, chLen: i32, ptr: usize, len: i32): i32;
// @ts-ignore: decorator
@external("wasmesh", "send") declare function host_send(targetPtr: usize, ptr: usize, len: i32): i32;

// Scratch space for UTF-8 encodings of strings handed to the host.
let scratch: ArrayBuffer = new ArrayBuffer(64);

/** Log levels understood by the host. */
export enum Level {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

/** One inbound event. The object and its payload view are reused for the
 * next event: copy `payload` (`.slice()`) to keep it. */
export class Event {
  /** Hash of the sender's origin. */
  origin: u64 = 0;
  /** The sender's sequence number. */
  seq: u64 = 0;
  payload: Uint8Array = new Uint8Array(0);
}

function noHandler(ev: Event): i32 {
  return fail("wasmesh: no onEvent handler registered");
}
function noInit(config: Uint8Array): i32 {
  return 0;
}
function noSnapshot(): i32 {
  return fail("wasmesh: wasmesh_snapshot exported without an onSnapshot handler");
}
function noRestore(state: Uint8Array): i32 {
  return fail("wasmesh: wasmesh_restore exported without an onRestore handler");
}

let eventHandler: (ev: Event) => i32 = noHandler;
let initHandler: (config: Uint8Array) => i32 = noInit;
let snapshotHandler: () => i32 = noSnapshot;
let restoreHandler: (state: Uint8Array) => i32 = noRestore;

/** Sets the event handler: return 0 for success, non-zero (e.g. the result
 * of `fail`) to fail the event. Outputs are the `emit` calls it makes. */
export function onEvent(h: (ev: Event) => i32): void {
  eventHandler = h;
}
/** Sets the spawn-time config handler (needs `wasmesh_init` re-exported). */
export function onInit(h: (config: Uint8Array) => i32): void {
  initHandler = h;
}
/** Sets the cooperative snapshot handler; it calls `stateWrite`. */
export function onSnapshot(h: () => i32): void {
  snapshotHandler = h;
}
/** Sets the cooperative restore handler. */
export function onRestore(h: (state: Uint8Array) => i32): void {
  restoreHandler = h;
}

// The input buffer only grows: the host may reuse it for any later input no
// longer than the last length it asked for, so it must not move in between.
let inBuf: ArrayBuffer = new ArrayBuffer(0);
let inView: Uint8Array = Uint8Array.wrap(inBuf, 0, 0);
const event = new Event();

// A view of the host-written bytes. Re-slicing the one view by rewriting its
// length keeps events allocation-free, which matters under the stub runtime.
function inputView(ptr: usize, len: i32): Uint8Array {
  if (len < 0) len = 0;
  const start = changetype<usize>(inBuf);
  if (ptr == start && len <= inBuf.byteLength) {
    store<i32>(changetype<usize>(inView) + offsetof<Uint8Array>("byteLength"), len);
    return inView;
  }
  // Not the input buffer (a host that does not follow the ABI): copy.
  const out = new Uint8Array(len);
  memory.copy(out.dataStart, ptr, len);
  return out;
}

export function wasmesh_abi_v1(): void {}

export function wasmesh_input(len: i32): usize {
  if (len > inBuf.byteLength) {
    inBuf = new ArrayBuffer(len);
    inView = Uint8Array.wrap(inBuf, 0, len);
  }
  return changetype<usize>(inBuf);
}

export function wasmesh_process(origin: u64, seq: u64, ptr: usize, len: i32): i32 {
  event.origin = origin;
  event.seq = seq;
  event.payload = inputView(ptr, len);
  return eventHandler(event);
}

export function wasmesh_init(ptr: usize, len: i32): i32 {
  return initHandler(inputView(ptr, len));
}

export function wasmesh_snapshot(): i32 {
  return snapshotHandler();
}

export function wasmesh_restore(ptr: usize, len: i32): i32 {
  return restoreHandler(inputView(ptr, len));
}

function utf8(s: string): i32 {
  // UTF-16 to UTF-8 needs at most 3 bytes per code unit.
  const need = s.length * 3;
  if (need > scratch.byteLength) scratch = new ArrayBuffer(need);
  return <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, changetype<usize>(scratch));
}

/** Emits one output payload. */
export function emit(data: Uint8Array): void {
  host_emit(data.dataStart, data.byteLength);
}

/** Emits `len` bytes at `ptr` (for data outside a Uint8Array). */
export function emitRaw(ptr: usize, len: i32): void {
  host_emit(ptr, len);
}

/** Emits a string as UTF-8. */
export function emitString(s: string): void {
  const n = utf8(s);
  host_emit(changetype<usize>(scratch), n);
}

/** Sets the error message of the current call and returns 1, so a handler
 * can `return fail("...")`. */
export function fail(msg: string): i32 {
  const n = utf8(msg);
  host_fail(changetype<usize>(scratch), n);
  return 1;
}

export function log(level: Level, msg: string): void {
  const n = utf8(msg);
  host_log(<i32>level, changetype<usize>(scratch), n);
}

/** Appends to the state of a cooperative snapshot (only in onSnapshot). */
export function stateWrite(data: Uint8Array): void {
  host_state_write(data.dataStart, data.byteLength);
}

/** Host time in unix nanoseconds; use it rather than Date so replays see the
 * same time. */
export function now(): i64 {
  return host_now();
}

/** Fills `buf` with host randomness. */
export function random(buf: Uint8Array): void {
  host_random(buf.dataStart, buf.byteLength);
}

/** The daemon's 32-byte entity id. */
export function selfId(): Uint8Array {
  const id = new Uint8Array(32);
  host_self(id.dataStart);
  return id;
}

/** Results of `publish`. */
export const PUBLISH_QUEUED: i32 = 0;
export const PUBLISH_TOO_LARGE: i32 = 1;
export const PUBLISH_FULL: i32 = 2;
export const PUBLISH_BAD_CHANNEL: i32 = 3;
export const PUBLISH_TOO_MANY_CHANNELS: i32 = 4;

/** Publishes `data` on `channel` once this event commits; returns a `PUBLISH_*` result. */
export function publish(channel: string, data: Uint8Array): i32 {
  const n = utf8(channel);
  return host_publish(changetype<usize>(scratch), n, data.dataStart, data.byteLength);
}

/** Results of `send`. */
export const SEND_QUEUED: i32 = 0;
export const SEND_TOO_LARGE: i32 = 1;
export const SEND_FULL: i32 = 2;

// The target origin handed to the host (8 bytes, little-endian).
const sendTarget = new ArrayBuffer(8);

/** Sends `data` to the daemon whose origin (8-byte id) is `target`: it
 * arrives as an event from this daemon's origin, exactly once and in order,
 * wherever either lives. A failed event sends nothing. Returns SEND_*. */
export function send(target: u64, data: Uint8Array): i32 {
  store<u64>(changetype<usize>(sendTarget), target);
  return host_send(changetype<usize>(sendTarget), data.dataStart, data.byteLength);
}
