package meshquic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/wasmesh/wasmesh/host/chain"
)

// bodies returns the data-frame bodies in a frameBuf's output.
func bodies(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		f, err := ReadFrame(r, nil, DefaultMaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		kind, body, err := splitFrame(f)
		if err != nil || kind != kindData {
			t.Fatalf("kind %d err %v", kind, err)
		}
		out = append(out, body)
	}
	return out
}

func TestPipelineCodecEventsRoundTrip(t *testing.T) {
	in := []pipeEvent{
		{id: 1, flags: flagFresh, ev: Event{Target: 7, Sender: 0, Seq: 1, Payload: []byte{}}},
		{id: 1<<40 | 3, flags: flagOnce, ev: Event{Target: ^uint64(0), Sender: 99, Seq: 1 << 60, Payload: bytes.Repeat([]byte{'x'}, 300), Once: true}},
	}
	// A small cut forces several frames.
	f := newFrameBuf(pipeTypeEvents, 16)
	for i := 0; i < 50; i++ {
		for j := range in {
			f.b = appendEventItem(f.item(0), in[j].id, in[j].flags, &in[j].ev)
		}
	}
	var got []pipeEvent
	bs := bodies(t, f.take(nil))
	if len(bs) < 2 {
		t.Fatalf("%d frames, want the cut to make several", len(bs))
	}
	for _, body := range bs {
		var err error
		if got, err = decodeEventBatch(body, got); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d events", len(got))
	}
	for i, g := range got {
		if !reflect.DeepEqual(g, in[i%2]) {
			t.Fatalf("event %d: %+v, want %+v", i, g, in[i%2])
		}
	}
}

func TestPipelineCodecResultsRoundTrip(t *testing.T) {
	l := chain.Next(chain.Genesis(7), chain.GenesisHash(7), 0).AppendBinary(nil)
	f := newFrameBuf(pipeTypeResults, pipeBatchBytes)
	ok := DeliverResponse{Outputs: []Output{{Link: l, Payload: []byte("a")}, {Link: l, Payload: nil}}}
	b, err := appendOKItem(f.item(0), 1, &ok, false)
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	f.b, _ = appendOKItem(f.item(0), 2, &DeliverResponse{Duplicate: true}, false)
	f.b = appendErrItem(f.item(0), 3, ErrNotFound)
	var to NodeID
	to[0], to[15] = 1, 2
	f.b = appendErrItem(f.item(0), 4, &MovedError{Origin: 9, To: to, Epoch: 77})
	// For an event flagged noLinks: the outputs without their links, and
	// a duplicate stays a duplicate.
	f.b, _ = appendOKItem(f.item(0), 5, &ok, true)
	f.b, _ = appendOKItem(f.item(0), 6, &DeliverResponse{Duplicate: true}, true)
	bs := bodies(t, f.take(nil))
	res, outs, err := decodeResultBatch(bs[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 4 || res[0].status != statusOK || res[0].outN != 2 || string(outs[0].payload) != "a" || !bytes.Equal(outs[1].link, l) || len(outs[1].payload) != 0 {
		t.Fatalf("ok result: %+v %+v", res, outs)
	}
	if res[1].status != statusDup || res[2].status != statusError || string(res[2].code) != CodeNotFound {
		t.Fatalf("results %+v", res)
	}
	if res[3].status != statusMoved || res[3].moved != (MovedError{Origin: 9, To: to, Epoch: 77}) {
		t.Fatalf("moved %+v", res[3].moved)
	}
	if len(res) != 6 || res[4].status != statusBare || res[4].outN != 2 || string(outs[2].payload) != "a" || outs[2].link != nil || len(outs[3].payload) != 0 || res[5].status != statusDup {
		t.Fatalf("bare results: %+v %+v", res, outs)
	}
	// A link of the wrong size is never put on the wire.
	if _, err := appendOKItem(nil, 5, &DeliverResponse{Outputs: []Output{{Link: l[:55]}}}, false); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short link: %v", err)
	}
}

func TestPipelineCodecRefusesMalformed(t *testing.T) {
	f := newFrameBuf(pipeTypeEvents, pipeBatchBytes)
	f.b = appendEventItem(f.item(0), 1, 0, &Event{Target: 1, Payload: []byte("abc")})
	good := bodies(t, f.take(nil))[0]
	if _, err := decodeEventBatch(good, nil); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":           {},
		"version":         mut(func(b []byte) []byte { b[0] = 2; return b }),
		"type":            mut(func(b []byte) []byte { b[1] = pipeTypeResults; return b }),
		"zero count":      mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 0); return b }),
		"count too big":   mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 2); return b }),
		"huge count":      mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 1<<31); return b }),
		"unknown flag":    mut(func(b []byte) []byte { b[pipeBatchHeader+1] = 0x80; return b }),
		"trailing":        mut(func(b []byte) []byte { return append(b, 0) }),
		"truncated":       mut(func(b []byte) []byte { return b[:len(b)-1] }),
		"long payload":    mut(func(b []byte) []byte { b[len(b)-4] = 100; return b }),
		"overlong varint": append(good[:pipeBatchHeader:pipeBatchHeader], append([]byte{0x81, 0x00}, good[pipeBatchHeader+1:]...)...),
	}
	for name, body := range cases {
		if _, err := decodeEventBatch(body, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	rcases := map[string][]byte{
		"unknown status": {pipeVersion, pipeTypeResults, 0, 0, 0, 1, 1, 9},
		"huge outputs":   {pipeVersion, pipeTypeResults, 0, 0, 0, 1, 1, statusOK, 0xff, 0xff, 0x03},
		"long code":      {pipeVersion, pipeTypeResults, 0, 0, 0, 1, 1, statusError, 65},
		"short moved":    {pipeVersion, pipeTypeResults, 0, 0, 0, 1, 1, statusMoved, 0, 0},
	}
	for name, body := range rcases {
		if _, _, err := decodeResultBatch(body, nil, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzPipelineFrame feeds arbitrary bodies to both batch decoders: they
// must refuse or accept without panicking, and what they accept must
// re-encode to exactly the same bytes (one encoding per batch).
func FuzzPipelineFrame(f *testing.F) {
	ev := newFrameBuf(pipeTypeEvents, pipeBatchBytes)
	ev.b = appendEventItem(ev.item(0), 1, flagFresh|flagOnce, &Event{Target: 1, Sender: 2, Seq: 3, Payload: []byte("p"), Once: true})
	ev.b = appendEventItem(ev.item(0), 300, 0, &Event{Target: 1 << 63})
	f.Add(bodies(f, ev.take(nil))[0])
	l := chain.Next(chain.Genesis(7), chain.GenesisHash(7), 0).AppendBinary(nil)
	rs := newFrameBuf(pipeTypeResults, pipeBatchBytes)
	rs.b, _ = appendOKItem(rs.item(0), 1, &DeliverResponse{Outputs: []Output{{Link: l, Payload: []byte("o")}}}, false)
	rs.b, _ = appendOKItem(rs.item(0), 2, &DeliverResponse{Duplicate: true}, false)
	rs.b, _ = appendOKItem(rs.item(0), 5, &DeliverResponse{Outputs: []Output{{Link: l, Payload: []byte("o")}, {}}}, true)
	rs.b = appendErrItem(rs.item(0), 3, ErrNotFound)
	rs.b = appendErrItem(rs.item(0), 4, &MovedError{Origin: 5, Epoch: 6})
	f.Add(bodies(f, rs.take(nil))[0])
	f.Fuzz(func(t *testing.T, body []byte) {
		if evs, err := decodeEventBatch(body, nil); err == nil {
			fb := newFrameBuf(pipeTypeEvents, 1<<30)
			for i := range evs {
				if evs[i].ev.Once != (evs[i].flags&flagOnce != 0) {
					t.Fatal("Once disagrees with its flag")
				}
				fb.b = appendEventItem(fb.item(0), evs[i].id, evs[i].flags, &evs[i].ev)
			}
			if again := bodies(t, fb.take(nil)); len(again) != 1 || !bytes.Equal(again[0], body) {
				t.Fatalf("events re-encode differently")
			}
		}
		res, outs, err := decodeResultBatch(body, nil, nil)
		if err != nil {
			return
		}
		fb := newFrameBuf(pipeTypeResults, 1<<30)
		for _, r := range res {
			switch r.status {
			case statusOK, statusBare:
				resp := DeliverResponse{}
				for _, o := range outs[r.outStart : r.outStart+r.outN] {
					if r.status == statusBare && o.link != nil {
						t.Fatal("a bare result decoded with a link")
					}
					resp.Outputs = append(resp.Outputs, Output{Link: o.link, Payload: o.payload})
				}
				b, err := appendOKItem(fb.item(0), r.id, &resp, r.status == statusBare)
				if err != nil {
					t.Fatal(err)
				}
				fb.b = b
			case statusDup:
				fb.b, _ = appendOKItem(fb.item(0), r.id, &DeliverResponse{Duplicate: true}, false)
			case statusMoved:
				mv := r.moved
				fb.b = appendErrItem(fb.item(0), r.id, &mv)
			case statusError:
				// Error items are re-encoded through toWire, which may
				// normalise codes; only check they decode.
				return
			}
		}
		if again := bodies(t, fb.take(nil)); len(again) != 1 || !bytes.Equal(again[0], body) {
			t.Fatalf("results re-encode differently")
		}
	})
}
