// Command counter-go is a wasmesh daemon that counts events. Every event
// adds one and emits the new count as decimal text ("1", "2", ...), except
// the payload "get", which emits the count unchanged.
//
// The count is an ordinary Go variable: the host snapshots the daemon's
// memory transparently, so it survives migration without any code here.
package main

import (
	"strconv"

	wasmesh "github.com/wasmesh/wasmesh/sdk-guest/go"
)

var count uint64

func init() { wasmesh.Handle(handle) }

func handle(ev wasmesh.Event) ([][]byte, error) {
	if string(ev.Payload) != "get" {
		count++
	}
	return [][]byte{strconv.AppendUint(nil, count, 10)}, nil
}

func main() {}
