//! counter: the count is a container-level var, so the host's transparent
//! snapshots carry it. Every event adds one and emits the count in decimal;
//! "get" only reads it; "trap" traps before touching it.
const std = @import("std");
const wasmesh = @import("wasmesh");

var count: u64 = 0;

pub fn process(ev: wasmesh.Event) !void {
    if (std.mem.eql(u8, ev.payload, "trap")) @trap();
    if (!std.mem.eql(u8, ev.payload, "get")) count += 1;
    var buf: [20]u8 = undefined;
    wasmesh.emit(try std.fmt.bufPrint(&buf, "{d}", .{count}));
}

comptime {
    wasmesh.exportDaemon(@This());
}
pub const panic = wasmesh.panic;
