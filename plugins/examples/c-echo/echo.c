/* echo: emits every payload back unchanged (an empty payload gives one empty
 * output). */
#include "wasmesh.h"

int wasmesh_handle(const wasmesh_event *ev) {
	wasmesh_emit(ev->payload, ev->len);
	return 0;
}
