package wire

import (
	"reflect"
	"testing"
)

// fuzzKind fuzzes the decoder of one kind: seeded with a valid frame of that
// kind, it checks Decode never panics, that whatever it accepts re-encodes and
// decodes to the same value, and it also runs the kind's body decoder
// directly on the raw bytes so mutations reach it without a valid header.
func fuzzKind(f *testing.F, k Kind) {
	for _, m := range samples() {
		if m.Kind() == k {
			b, err := Encode(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newReader(b, DefaultLimits())
		_ = decodeBody(k, Header{ID: 1, Attempt: 1}, r)

		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted %s does not re-encode: %v", m.Kind(), err)
		}
		m2, err := Decode(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode mismatch: %v\n%#v\n%#v", err, m, m2)
		}
		if len(again) > len(b) {
			// Encode picks the shortest integer forms, so a canonical
			// re-encoding is never longer than what was accepted.
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(again))
		}
	})
}

func FuzzStart(f *testing.F)           { fuzzKind(f, KindStart) }
func FuzzPrepare(f *testing.F)         { fuzzKind(f, KindPrepare) }
func FuzzNeedModule(f *testing.F)      { fuzzKind(f, KindNeedModule) }
func FuzzModuleDigest(f *testing.F)    { fuzzKind(f, KindModuleDigest) }
func FuzzSnapshotChunk(f *testing.F)   { fuzzKind(f, KindSnapshotChunk) }
func FuzzRestoreComplete(f *testing.F) { fuzzKind(f, KindRestoreComplete) }
func FuzzReplayBatch(f *testing.F)     { fuzzKind(f, KindReplayBatch) }
func FuzzReplayAck(f *testing.F)       { fuzzKind(f, KindReplayAck) }
func FuzzCutover(f *testing.F)         { fuzzKind(f, KindCutover) }
func FuzzActivate(f *testing.F)        { fuzzKind(f, KindActivate) }
func FuzzActivateAck(f *testing.F)     { fuzzKind(f, KindActivateAck) }
func FuzzAbort(f *testing.F)           { fuzzKind(f, KindAbort) }
func FuzzComplete(f *testing.F)        { fuzzKind(f, KindComplete) }
func FuzzNotReady(f *testing.F)        { fuzzKind(f, KindNotReady) }
