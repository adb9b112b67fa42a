package wasmbin

import (
	"os"
	"testing"
)

// BenchmarkParseGoReactor parses a 1.8 MB Go wasip1 module, decoding and
// checking every function body.
func BenchmarkParseGoReactor(b *testing.B) {
	bin, err := os.ReadFile("../../abi/testdata/go_reactor.wasm")
	if err != nil {
		b.Skip(err)
	}
	b.SetBytes(int64(len(bin)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(bin); err != nil {
			b.Fatal(err)
		}
	}
}
