//go:build race

package instrument

// raceEnabled: the interpreter reads globals in Go code, so setting the stop
// flag from another goroutine while it runs is a data race by the Go memory
// model (wazero's MutableGlobal.Set is a plain store). The race detector
// reports it, so the concurrent stop tests run only the compiler under
// -race. Under the compiler the guest reads the flag in native code the
// detector cannot see; an aligned 64-bit store is never torn on the
// platforms wazero compiles for.
const raceEnabled = true
