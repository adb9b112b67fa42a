// Command cooperative-go is counter-go in cooperative snapshot mode: the
// daemon's state is the 8 bytes its Snapshot hook returns (the count,
// little-endian), not its memory. Behaviour is counter-go's: every event adds
// one and emits the count as decimal text, "get" emits it unchanged.
package main

import (
	"encoding/binary"
	"errors"
	"strconv"

	wasmesh "github.com/wasmesh/wasmesh/sdk-guest/go"
	_ "github.com/wasmesh/wasmesh/sdk-guest/go/coop"
)

var count uint64

func init() {
	wasmesh.Handle(handle)
	wasmesh.Snapshot(func() ([]byte, error) {
		return binary.LittleEndian.AppendUint64(nil, count), nil
	})
	wasmesh.Restore(func(state []byte) error {
		if len(state) != 8 {
			return errors.New("state is " + strconv.Itoa(len(state)) + " bytes, want 8")
		}
		count = binary.LittleEndian.Uint64(state)
		return nil
	})
}

func handle(ev wasmesh.Event) ([][]byte, error) {
	if string(ev.Payload) != "get" {
		count++
	}
	return [][]byte{strconv.AppendUint(nil, count, 10)}, nil
}

func main() {}
