// Package wire is the byte format of the migration subprotocol: one msgpack
// array per message, encoded by hand and decoded by a strict, bounded decoder
// so that a hostile or corrupted frame is an error, never a panic or an
// unbounded allocation.
//
// Frame layout (a msgpack array):
//
//	[ version=1, kind, migration id, attempt, fields of the kind... ]
//
// The field count is fixed per kind; unknown versions and kinds, wrong field
// counts, wrong msgpack types (nil, negative or signed-where-unsigned), over-long
// strings or byte fields and trailing bytes are all rejected.
package wire
