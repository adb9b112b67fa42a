// Package examples holds the example daemons; it embeds the small ones so
// commands (wasmesh demo) and tests can run them without the source tree.
package examples

import _ "embed"

//go:embed counter-wat/counter-wat.wasm
var counterWAT string // a string, so the embedded bytes cannot be mutated

// CounterWAT returns counter-wat.wasm: every event adds one to a count and
// emits it as decimal text; the payload "get" emits the count without adding.
func CounterWAT() []byte { return []byte(counterWAT) }
