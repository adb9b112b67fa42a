/* counter: the count is a plain static, so the host's transparent snapshots
 * carry it. Every event adds one and emits the count in decimal; "get" only
 * reads it; "trap" traps before touching it. */
#include "wasmesh.h"

static uint64_t count;

int wasmesh_handle(const wasmesh_event *ev) {
	char buf[20];
	if (wasmesh_eq(ev->payload, ev->len, "trap")) __builtin_trap();
	if (!wasmesh_eq(ev->payload, ev->len, "get")) count++;
	wasmesh_emit(buf, wasmesh_fmt_u64(count, buf));
	return 0;
}
