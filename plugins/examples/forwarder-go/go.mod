module github.com/wasmesh/wasmesh/plugins/examples/forwarder-go

go 1.24

require github.com/wasmesh/wasmesh/sdk-guest/go v0.0.0

replace github.com/wasmesh/wasmesh/sdk-guest/go => ../../../sdk-guest/go
