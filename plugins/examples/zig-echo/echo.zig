//! echo: emits every payload back unchanged (an empty payload gives one empty
//! output).
const wasmesh = @import("wasmesh");

pub fn process(ev: wasmesh.Event) !void {
    wasmesh.emit(ev.payload);
}

comptime {
    wasmesh.exportDaemon(@This());
}
pub const panic = wasmesh.panic;
