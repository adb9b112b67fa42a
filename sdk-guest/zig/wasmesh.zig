//! Zig guest SDK for wasmesh daemons (guest ABI v1). Written for Zig 0.11.
//!
//! A daemon is a file (a container) with
//!
//!     pub fn process(ev: wasmesh.Event) !void
//!
//! and optionally `pub fn init(config: []const u8) !void`. Outputs are the
//! `emit` calls made during `process`; returning an error fails the event
//! with the error's name, or with the message given to `fail`. The root file
//! generates the exports:
//!
//!     comptime { wasmesh.exportDaemon(@This()); }
//!     pub const panic = wasmesh.panic;
//!
//! Container-level `var`s are ordinary linear memory, so the host's
//! transparent snapshots carry them. For cooperative snapshots add
//! `pub fn snapshot() !void` (calls `stateWrite`) and
//! `pub fn restore(state: []const u8) !void` and use `exportCooperative`.
//!
//! Build: zig build-lib -target wasm32-freestanding -dynamic -rdynamic
//!   -O ReleaseSmall --mod wasmesh::<this file> --deps wasmesh daemon.zig

const std = @import("std");

/// One inbound event. `payload` lives in the input buffer and is valid for
/// this call only.
pub const Event = struct {
    /// Hash of the sender's origin.
    origin: u64,
    /// The sender's sequence number.
    seq: u64,
    payload: []const u8,
};

/// Log levels understood by the host.
pub const Level = enum(i32) { debug = 0, info = 1, warn = 2, err = 3 };

/// The heap, for daemons that need one (grows linear memory on demand).
pub const allocator = std.heap.wasm_allocator;

const host = struct {
    extern "wasmesh" fn emit(ptr: [*]const u8, len: usize) void;
    extern "wasmesh" fn fail(ptr: [*]const u8, len: usize) void;
    extern "wasmesh" fn log(level: i32, ptr: [*]const u8, len: usize) void;
    extern "wasmesh" fn state_write(ptr: [*]const u8, len: usize) void;
    extern "wasmesh" fn now() i64;
    extern "wasmesh" fn random(ptr: [*]u8, len: usize) void;
    extern "wasmesh" fn self(ptr: [*]u8) void;
    extern "wasmesh" fn publish(ch_ptr: [*]const u8, ch_len: usize, ptr: [*]const u8, len: usize) i32;
    extern "wasmesh" fn send(target_ptr: [*]const u8, ptr: [*]const u8, len: usize) i32;
};

// An empty slice's pointer is undefined in Zig (0xaaaaaaaa in practice),
// and the host bounds-checks pointers even for zero lengths.
var empty: u8 = 0;
fn addr(data: []const u8) [*]const u8 {
    return if (data.len == 0) @as([*]const u8, @ptrCast(&empty)) else data.ptr;
}

/// Emits one output payload.
pub fn emit(data: []const u8) void {
    host.emit(addr(data), data.len);
}

// Set by fail so an error return does not overwrite a better message with
// the bare error name.
var failed = false;

/// Sets the error message of the current call. Return an error afterwards
/// (any error) to make the call fail.
pub fn fail(msg: []const u8) void {
    failed = true;
    host.fail(addr(msg), msg.len);
}

pub fn log(level: Level, msg: []const u8) void {
    host.log(@intFromEnum(level), addr(msg), msg.len);
}

/// Formats into a stack buffer (truncated at 512 bytes) and logs it.
pub fn logf(level: Level, comptime fmt: []const u8, args: anytype) void {
    var buf: [512]u8 = undefined;
    const msg = std.fmt.bufPrint(&buf, fmt, args) catch buf[0..];
    log(level, msg);
}

/// Appends to the state of a cooperative snapshot (only inside `snapshot`).
pub fn stateWrite(data: []const u8) void {
    host.state_write(addr(data), data.len);
}

/// Host time in unix nanoseconds; use it rather than a clock of your own so
/// replays see the same time.
pub fn now() i64 {
    return host.now();
}

/// Fills `buf` with host randomness.
pub fn random(buf: []u8) void {
    host.random(@constCast(addr(buf)), buf.len);
}

/// The daemon's 32-byte entity id.
pub fn selfId() [32]u8 {
    var id: [32]u8 = undefined;
    host.self(&id);
    return id;
}

pub const PublishError = error{PublishRefused};

/// Publishes `data` on `channel` once this event commits. Any non-zero
/// host result (1 too large, 2 outbox full, 3 bad channel name, 4 too many
/// channels) is PublishRefused.
pub fn publish(channel: []const u8, data: []const u8) PublishError!void {
    if (host.publish(addr(channel), channel.len, addr(data), data.len) != 0) return error.PublishRefused;
}

pub const SendError = error{ SendTooLarge, OutboxFull, SendRefused };

/// Sends `data` to the daemon whose origin (8-byte id) is `target`: it
/// arrives as an event from this daemon's origin, exactly once and in
/// order, wherever either lives. A failed event sends nothing.
pub fn send(target: u64, data: []const u8) SendError!void {
    var t: [8]u8 = undefined;
    std.mem.writeIntLittle(u64, &t, target);
    switch (host.send(&t, addr(data), data.len)) {
        0 => {},
        1 => return error.SendTooLarge,
        2 => return error.OutboxFull,
        else => return error.SendRefused,
    }
}

/// A panic handler that reports the message through `fail` and traps. Use
/// it with `pub const panic = wasmesh.panic;` in the root file: Zig's
/// freestanding default spins on @breakpoint instead.
pub fn panic(msg: []const u8, trace: ?*std.builtin.StackTrace, ret_addr: ?usize) noreturn {
    _ = trace;
    _ = ret_addr;
    host.fail(addr(msg), msg.len);
    @trap();
}

// The input buffer only grows: the host may reuse it for any later input no
// longer than the last length it asked for, so it must not move in between.
var in_buf: []u8 = &[_]u8{};

fn input(len: i32) callconv(.C) [*]u8 {
    // At least one byte: a zero-length allocation has no usable address, and
    // the host checks the pointer it gets against memory bounds.
    const n: usize = @max(@as(usize, @intCast(@max(len, 0))), 1);
    if (n > in_buf.len) {
        if (in_buf.len > 0) allocator.free(in_buf);
        in_buf = allocator.alloc(u8, n) catch @trap();
    }
    return in_buf.ptr;
}

fn bytes(p: [*]const u8, len: i32) []const u8 {
    // Slicing the host's pointer (not `&.{}`) keeps empty payloads at a real
    // address, so echoing one back passes the host's bounds check.
    return p[0..@as(usize, @intCast(@max(len, 0)))];
}

fn result(r: anyerror!void) i32 {
    r catch |err| {
        if (!failed) {
            const name = @errorName(err);
            host.fail(name.ptr, name.len);
        }
        return 1;
    };
    return 0;
}

fn abiMarker() callconv(.C) void {}

/// Exports `wasmesh_abi_v1`, `wasmesh_input`, `wasmesh_process` and, if `D`
/// declares `init`, `wasmesh_init`. Call it in a `comptime` block.
pub fn exportDaemon(comptime D: type) void {
    const gen = struct {
        fn process(origin: i64, seq: i64, ptr: [*]const u8, len: i32) callconv(.C) i32 {
            failed = false;
            return result(D.process(.{
                .origin = @bitCast(origin),
                .seq = @bitCast(seq),
                .payload = bytes(ptr, len),
            }));
        }
        fn init(ptr: [*]const u8, len: i32) callconv(.C) i32 {
            failed = false;
            return result(D.init(bytes(ptr, len)));
        }
    };
    @export(abiMarker, .{ .name = "wasmesh_abi_v1" });
    @export(input, .{ .name = "wasmesh_input" });
    @export(gen.process, .{ .name = "wasmesh_process" });
    if (@hasDecl(D, "init")) @export(gen.init, .{ .name = "wasmesh_init" });
}

/// Like `exportDaemon`, and also exports `wasmesh_snapshot` and
/// `wasmesh_restore` from `D.snapshot` and `D.restore`, which makes the host
/// keep what `snapshot` writes instead of copying linear memory.
pub fn exportCooperative(comptime D: type) void {
    exportDaemon(D);
    const gen = struct {
        fn snapshot() callconv(.C) i32 {
            failed = false;
            return result(D.snapshot());
        }
        fn restore(ptr: [*]const u8, len: i32) callconv(.C) i32 {
            failed = false;
            return result(D.restore(bytes(ptr, len)));
        }
    };
    @export(gen.snapshot, .{ .name = "wasmesh_snapshot" });
    @export(gen.restore, .{ .name = "wasmesh_restore" });
}
