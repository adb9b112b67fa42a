package meshquic

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame feeds arbitrary bytes to the frame reader and the message
// decoders a peer's bytes reach: none may panic, and every failure must be
// one of the typed errors.
func FuzzReadFrame(f *testing.F) {
	good, _ := appendFrame(nil, kindHeader, header{Subprotocol: "x", RequestID: 7}, 1<<10)
	good, _ = appendFrame(good, kindData, DeliverRequest{Event: Event{Target: 1, Payload: []byte("hi")}}, 1<<10)
	good, _ = appendFrame(good, kindError, wireError{Code: CodeMoved, To: make([]byte, 16)}, 1<<10)
	f.Add(good)
	f.Add([]byte{0, 0, 0, 5, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0})
	f.Fuzz(runFuzzOne)
}

func runFuzzOne(t *testing.T, data []byte) {
	{
		r := bytes.NewReader(data)
		var buf []byte
		for {
			frame, err := ReadFrame(r, buf, 1<<10)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrTruncatedFrame) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if len(frame) > 1<<10 {
				t.Fatalf("frame of %d bytes exceeds limit", len(frame))
			}
			buf = frame[:0]
			kind, body, err := splitFrame(frame)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			var derr error
			switch kind {
			case kindHeader:
				var h header
				derr = decodeBody(body, &h)
			case kindData:
				var req DeliverRequest
				derr = decodeBody(body, &req)
			case kindError:
				var w wireError
				if derr = decodeBody(body, &w); derr == nil {
					_ = fromWire([16]byte{}, w)
				}
			}
			if derr != nil && !errors.Is(derr, ErrMalformed) {
				t.Fatalf("untyped decode error %v", derr)
			}
		}
	}
}
