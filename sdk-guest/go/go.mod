module github.com/wasmesh/wasmesh/sdk-guest/go

go 1.24
