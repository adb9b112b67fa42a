package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

func fuzzPackerMigrator(tb testing.TB) *Migrator {
	tb.Helper()
	p, err := newPacker()
	if err != nil {
		tb.Fatal(err)
	}
	if c, ok := tb.(interface{ Cleanup(func()) }); ok {
		c.Cleanup(p.close)
	}
	return &Migrator{pack: p, precopyAcks: make(map[uint64]chan precopyAckIn)}
}

// A delta snapshot arrives from the source inside the protocol's snapshot
// transfer. decodeDelta sees it after the caller checked the packDelta tag
// (run.go restore), so the fuzz input is the bytes after the tag.
//
// Accepted input: removed pages strictly increase, the header re-encodes to
// the bytes it came from, and a raw-packed body is returned unchanged.
// Separately, decodeDelta(encodeDelta(x)) == x.
func FuzzDecodeDelta(f *testing.F) {
	m := fuzzPackerMigrator(f)
	snap := bytes.Repeat([]byte("snapshot"), 64)
	f.Add(m.encodeDelta(nil, snap)[1:], []byte{1, 0, 0, 0, 5, 0, 0, 0}, []byte("x"))
	f.Add(m.encodeDelta([]uint32{1, 2, 9}, []byte("tiny"))[1:], []byte{}, []byte{})
	f.Add([]byte{1, 0, 0, 0, 3, 0, 0, 0, packRaw, 'a'}, []byte{2, 0, 0, 0, 1, 0, 0, 0}, snap)
	f.Add([]byte{2, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, packRaw}, []byte{}, []byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, []byte{}, []byte{})
	f.Add([]byte{0, 0, 0, 0, packZstd, 0x28, 0xb5, 0x2f, 0xfd}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, body, removedLE, payload []byte) {
		b := append([]byte{packDelta}, body...)
		removed, raw, err := m.decodeDelta(b)
		if err == nil {
			for i := 1; i < len(removed); i++ {
				if removed[i] <= removed[i-1] {
					t.Fatalf("accepted removed pages out of order: %v", removed)
				}
			}
			hdr := 1 + 4 + 4*len(removed)
			if len(b) <= hdr {
				t.Fatalf("accepted %d removed pages in %d bytes", len(removed), len(b))
			}
			again := m.encodeDelta(removed, nil)
			if !bytes.Equal(again[:hdr], b[:hdr]) {
				t.Fatalf("accepted header does not re-encode to itself")
			}
			if b[hdr] == packRaw && !bytes.Equal(raw, b[hdr+1:]) {
				t.Fatalf("raw-packed body changed in decoding")
			}
		} else if !errors.Is(err, ErrBadFrame) {
			t.Fatalf("error %v is not ErrBadFrame", err)
		}

		// Round trip of a well-formed delta built from the other inputs.
		var rm []uint32
		for len(removedLE) >= 4 && len(rm) < 1024 {
			p := binary.LittleEndian.Uint32(removedLE)
			removedLE = removedLE[4:]
			if len(rm) > 0 && p <= rm[len(rm)-1] {
				continue
			}
			rm = append(rm, p)
		}
		gotRm, gotRaw, err := m.decodeDelta(m.encodeDelta(rm, payload))
		if err != nil || !slicesEqual(gotRm, rm) || !bytes.Equal(gotRaw, payload) {
			t.Fatalf("decodeDelta(encodeDelta(%v, %d bytes)) = %v, %d bytes, %v", rm, len(payload), gotRm, len(gotRaw), err)
		}
	})
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The pre-copy acknowledgement (id u64 | ok byte | round u32 | reason)
// comes from the target. Accepted: ok=1 with no reason or ok=0 with a
// reason of 1 to maxAckText bytes, and it re-encodes to the same bytes;
// everything else is ErrBadFrame and reaches no pre-copy.
func FuzzDecodePrecopyAck(f *testing.F) {
	f.Add(encodePrecopyAck(protocol.PrecopyAck{ID: 7, Round: 2})[1:])
	f.Add(encodePrecopyAck(protocol.PrecopyAck{ID: 7, Err: "no room"})[1:])
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 'x'})
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0})
	f.Add([]byte{})
	m := fuzzPackerMigrator(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ch := make(chan precopyAckIn, 1)
		m.precopyAcks[7] = ch
		a, err := decodePrecopyAck(b)
		rerr := m.receivePrecopyAck("T", b)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("decode %v, receive %v", err, rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v is not ErrBadFrame", err)
			}
			if len(ch) != 0 {
				t.Fatal("a refused ack reached a pre-copy")
			}
			return
		}
		if again := encodePrecopyAck(a)[1:]; !bytes.Equal(again, b) {
			t.Fatalf("accepted ack re-encodes to %x, not %x", again, b)
		}
		if (a.Err == "") != (b[8] == 1) || !strings.Contains(string(b), a.Err) {
			t.Fatalf("ok byte %d gave %+v", b[8], a)
		}
		if got := len(ch); (a.ID == 7) != (got == 1) {
			t.Fatalf("ack for %d: %d delivered to pre-copy 7", a.ID, got)
		}
		if a.ID == 7 {
			if in := <-ch; in.from != "T" || in.ack != a {
				t.Fatalf("delivered %+v, decoded %+v", in, a)
			}
		}
	})
}
