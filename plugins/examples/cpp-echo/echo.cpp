// echo in C++: emits every payload back unchanged (an empty payload gives one
// empty output). The header's declarations are extern "C", so this definition
// keeps the unmangled name the SDK calls.
#include "wasmesh.h"

namespace {

struct Payload {
	const uint8_t *data;
	size_t size;
	explicit Payload(const wasmesh_event &ev) : data(ev.payload), size(ev.len) {}
	void emit() const { wasmesh_emit(data, size); }
};

}  // namespace

int wasmesh_handle(const wasmesh_event *ev) {
	Payload(*ev).emit();
	return 0;
}
