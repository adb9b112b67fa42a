// Package sim is a seeded, deterministic cluster simulator: real
// migrators and wasm runtimes on a simulated network and simulated time
// (testing/synctest), driven by a seed, checked after every step. The
// simulator lives in the package's tests; see README.md.
package sim
