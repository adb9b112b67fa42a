/* coop: the counter with cooperative snapshots. Its state is the 8-byte
 * little-endian count, so the host never copies linear memory for it. */
#define WASMESH_COOPERATIVE
#include "wasmesh.h"

static uint64_t count;

int wasmesh_handle(const wasmesh_event *ev) {
	char buf[20];
	if (wasmesh_eq(ev->payload, ev->len, "trap")) __builtin_trap();
	if (!wasmesh_eq(ev->payload, ev->len, "get")) count++;
	wasmesh_emit(buf, wasmesh_fmt_u64(count, buf));
	return 0;
}

int wasmesh_on_snapshot(void) {
	uint8_t le[8];
	int i;
	for (i = 0; i < 8; i++) le[i] = (uint8_t)(count >> (8 * i));
	wasmesh_state_write(le, sizeof le);
	return 0;
}

int wasmesh_on_restore(const uint8_t *state, size_t len) {
	uint64_t v = 0;
	int i;
	if (len != 8) return wasmesh_fail("coop: state must be 8 bytes");
	for (i = 0; i < 8; i++) v |= (uint64_t)state[i] << (8 * i);
	count = v;
	return 0;
}
