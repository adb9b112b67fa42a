//! coop: the counter with cooperative snapshots. Its state is the 8-byte
//! little-endian count, so the host never copies linear memory for it.
const std = @import("std");
const wasmesh = @import("wasmesh");

var count: u64 = 0;

pub fn process(ev: wasmesh.Event) !void {
    if (std.mem.eql(u8, ev.payload, "trap")) @trap();
    if (!std.mem.eql(u8, ev.payload, "get")) count += 1;
    var buf: [20]u8 = undefined;
    wasmesh.emit(try std.fmt.bufPrint(&buf, "{d}", .{count}));
}

pub fn snapshot() !void {
    var le: [8]u8 = undefined;
    std.mem.writeIntLittle(u64, &le, count);
    wasmesh.stateWrite(&le);
}

pub fn restore(state: []const u8) !void {
    if (state.len != 8) {
        wasmesh.fail("coop: state must be 8 bytes");
        return error.BadState;
    }
    count = std.mem.readIntLittle(u64, state[0..8]);
}

comptime {
    wasmesh.exportCooperative(@This());
}
pub const panic = wasmesh.panic;
