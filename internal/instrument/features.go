package instrument

import (
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// CoreFeatures is the wazero feature set a runtime must enable to run the
// modules Instrument derives. It is exactly what wasmbin.Parse accepts:
// WebAssembly 2.0, tail calls (which the entry checks themselves use) and
// extended constant expressions. Everything else the parser knows of
// (threads, exceptions, GC, typed function references, memory64,
// multi-memory, relaxed SIMD) it refuses as unsupported, so a module that
// passes Instrument compiles.
const CoreFeatures = api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall | experimental.CoreFeaturesExtendedConst
