package migrator

import (
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/migration/wire"
)

// TestFrameLane: every kind of frame the migrator sends names its
// migration, so it travels on that migration's lane and stream; a frame
// it cannot read goes on the shared lane 0.
func TestFrameLane(t *testing.T) {
	const id = 0xfedcba9876543211
	msg, err := encodeMessage(wire.Cutover{Header: wire.Header{ID: id, Attempt: 3}})
	if err != nil {
		t.Fatal(err)
	}
	chunk, err := wire.Encode(wire.SnapshotChunk{Header: wire.Header{ID: id, Attempt: 1}, Origin: 9, SnapshotSeq: 4, Index: 0, Count: 1, TotalBytes: 1, Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string][]byte{
		"message":  msg,
		"precopy":  append([]byte{framePrecopy}, chunk...),
		"round":    append([]byte{framePrecopyRound}, chunk...),
		"ack ok":   precopyAck(id, nil),
		"ack fail": precopyAck(id, errors.New("no")),
		"outputs":  encodeReport(report{ID: id, Seq: 7}),
	} {
		if got := frameLane(f); got != id {
			t.Errorf("%s: lane %#x, want %#x", name, got, uint64(id))
		}
	}
	for name, f := range map[string][]byte{
		"empty":        nil,
		"unknown type": {99, 1, 2, 3},
		"short ack":    {framePrecopyAck, 1, 2},
		"not msgpack":  {frameMessage, 0xc1},
		"short array":  {frameMessage, 0x92, 1, 2},
	} {
		if got := frameLane(f); got != 0 {
			t.Errorf("%s: lane %#x, want 0", name, got)
		}
	}
}
