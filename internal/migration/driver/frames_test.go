package driver

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
)

func TestReportRoundTrip(t *testing.T) {
	r := report{ID: 7, Seq: 9, Err: "boom", Outputs: []engine.Output{
		{Link: chain.Link{Origin: 1, Sequence: 2, Horizon: 3}, Payload: []byte("a")},
		{Link: chain.Link{Origin: 1, Sequence: 3}, Payload: nil},
	}}
	b := encodeReport(r)
	got, err := decodeReport(b[1:])
	if err != nil || got.ID != 7 || got.Seq != 9 || got.Err != "boom" || len(got.Outputs) != 2 ||
		got.Outputs[0].Link != r.Outputs[0].Link || !bytes.Equal(got.Outputs[0].Payload, []byte("a")) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for n := 0; n < len(b)-1; n++ {
		if _, err := decodeReport(b[1 : 1+n]); !errors.Is(err, ErrBadFrame) && err == nil {
			t.Fatalf("truncated to %d decoded", n)
		}
	}
	if _, err := decodeReport(append(b[1:], 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecodeReport(f *testing.F) {
	f.Add(encodeReport(report{ID: 1, Seq: 2, Outputs: []engine.Output{{Payload: []byte("x")}}})[1:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReport(b)
		if err != nil {
			return
		}
		if again := encodeReport(r); !bytes.Equal(again[1:], b) {
			t.Fatalf("accepted input does not re-encode to itself")
		}
	})
}
