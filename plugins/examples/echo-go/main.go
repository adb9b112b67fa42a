// Command echo-go is a wasmesh daemon that answers every event with its
// payload, unchanged (an empty payload gives one empty output).
package main

import wasmesh "github.com/wasmesh/wasmesh/sdk-guest/go"

func init() { wasmesh.Handle(handle) }

// Returning the payload without copying is safe: outputs are handed to the
// host before the input buffer is reused.
func handle(ev wasmesh.Event) ([][]byte, error) {
	return [][]byte{ev.Payload}, nil
}

func main() {}
