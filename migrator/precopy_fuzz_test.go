package migrator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
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
	return &Migrator{pack: p, precopyAcks: make(map[uint64]chan error)}
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

// The pre-copy acknowledgement (id u64 | ok byte | message) comes from the
// target; it resolves only the pre-copy it names, with success only for ok=1.
func FuzzReceivePrecopyAck(f *testing.F) {
	ack := func(id uint64, ok byte, msg string) []byte {
		return append(append(binary.LittleEndian.AppendUint64(nil, id), ok), msg...)
	}
	f.Add(ack(7, 1, ""))
	f.Add(ack(7, 0, "no room"))
	f.Add(ack(8, 1, ""))
	f.Add(ack(7, 2, "x"))
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	m := fuzzPackerMigrator(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ch := make(chan error, 1)
		m.precopyAcks[7] = ch
		err := m.receivePrecopyAck(b)
		if len(b) < 9 {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("short ack: %v, want ErrBadFrame", err)
			}
			if len(ch) != 0 {
				t.Fatal("short ack resolved a pre-copy")
			}
			return
		}
		if err != nil {
			t.Fatalf("well-formed ack refused: %v", err)
		}
		if binary.LittleEndian.Uint64(b) != 7 {
			if len(ch) != 0 {
				t.Fatal("ack for another id resolved pre-copy 7")
			}
			return
		}
		if len(ch) != 1 {
			t.Fatal("ack for pre-copy 7 did not resolve it")
		}
		got := <-ch
		if (got == nil) != (b[8] == 1) {
			t.Fatalf("ok byte %d gave %v", b[8], got)
		}
		if got != nil && !strings.Contains(got.Error(), string(b[9:])) {
			t.Fatalf("refusal %q lost the target's message", got)
		}
	})
}
