package snapshot

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// genSnapshot draws a valid snapshot for id. Page contents come from a
// drawn seed plus a few drawn bytes rather than 64 KiB of draws, which keeps
// shrinking fast without losing variety where the format cares (indexes).
func genSnapshot(t *rapid.T, id identity.Identity) *Snapshot {
	s := &Snapshot{
		EntityID: id.EntityID(),
		Sequence: rapid.Uint64Max(math.MaxUint64-1).Draw(t, "seq"),
		InputSeq: rapid.Uint64Max(math.MaxUint64-1).Draw(t, "inputSeq"),
		Mode:     rapid.SampledFrom([]Mode{Transparent, Cooperative}).Draw(t, "mode"),
	}
	copy(s.ModuleDigest[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "digest"))
	copy(s.HeadHash[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "headHash"))
	s.ChainHead = chain.Link{
		Origin:   id.Origin(),
		Sequence: rapid.Uint64Max(math.MaxUint64-1).Draw(t, "headSeq"),
		Horizon:  rapid.Uint64().Draw(t, "headHorizon"),
	}
	copy(s.ChainHead.Parent[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "parent"))
	s.Horizon = rapid.MapOfN(rapid.Uint64(), rapid.Uint64(), 0, 20).Draw(t, "horizon")
	s.Ledger = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Subscription {
		return Subscription{
			Publisher: rapid.StringN(0, 12, -1).Draw(t, "publisher"),
			Channel:   rapid.StringN(0, 12, -1).Draw(t, "channel"),
			Token:     rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(t, "token"),
		}
	}), 0, 5).Draw(t, "ledger")
	s.Envelope = rapid.SliceOfN(rapid.Byte(), 0, 80).Draw(t, "envelope")

	switch s.Mode {
	case Transparent:
		s.MemoryPages = rapid.Uint32Range(0, 40).Draw(t, "memoryPages")
		if s.MemoryPages > 0 {
			idx := rapid.SliceOfNDistinct(rapid.Uint32Range(0, s.MemoryPages-1), 0, 3, rapid.ID[uint32]).Draw(t, "pageIndexes")
			slices.Sort(idx)
			for _, i := range idx {
				var data []byte
				if rapid.Bool().Draw(t, "densePage") {
					data = fillPage(rapid.Uint64().Draw(t, "pageSeed"))
				} else {
					data = make([]byte, PageSize)
					data[rapid.IntRange(0, PageSize-1).Draw(t, "at")] = rapid.ByteRange(1, 255).Draw(t, "val")
				}
				s.Pages = append(s.Pages, Page{Index: i, Data: data})
			}
		}
		gidx := rapid.SliceOfNDistinct(rapid.Uint32(), 0, 6, rapid.ID[uint32]).Draw(t, "globalIndexes")
		slices.Sort(gidx)
		for _, i := range gidx {
			g := Global{Index: i, Type: rapid.SampledFrom([]abi.ValType{abi.I32, abi.I64, abi.F32, abi.F64}).Draw(t, "type")}
			if g.Type == abi.I32 || g.Type == abi.F32 {
				g.Bits = uint64(rapid.Uint32().Draw(t, "bits32"))
			} else {
				g.Bits = rapid.Uint64().Draw(t, "bits64")
			}
			s.Globals = append(s.Globals, g)
		}
	case Cooperative:
		s.State = rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "state")
	}
	if rapid.Bool().Draw(t, "annotated") {
		a := &Annotations{
			Name:     rapid.StringN(0, 20, MaxAnnotationName).Draw(t, "name"),
			KindName: rapid.StringN(0, 20, MaxAnnotationName).Draw(t, "kindName"),
			Counters: Counters{EventsProcessed: rapid.Uint64().Draw(t, "processed"), EventsEmitted: rapid.Uint64().Draw(t, "emitted"),
				Errors: rapid.Uint64().Draw(t, "errors"), Snapshots: rapid.Uint64().Draw(t, "snapshots"),
				CPUNanos: rapid.Uint64().Draw(t, "cpu"), LogsDropped: rapid.Uint64().Draw(t, "dropped")},
		}
		a.Logs = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) LogLine {
			return LogLine{UnixNano: rapid.Int64().Draw(t, "at"), Level: rapid.Uint8Range(0, maxLogLevel).Draw(t, "level"),
				Text: rapid.StringN(0, 40, -1).Draw(t, "text")}
		}), 0, 8).Draw(t, "logs")
		s.Annotations = a
	}
	return s
}

func TestPropertyRoundTrip(t *testing.T) {
	id := testID(t, 3)
	rapid.Check(t, func(t *rapid.T) {
		s := genSnapshot(t, id)
		b, err := Encode(s, id)
		if err != nil {
			t.Fatalf("Encode of a valid snapshot: %v", err)
		}
		got, err := Decode(b, DefaultLimits())
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		assertSame(t, s, got)
		// Canonical: re-encoding the decoded snapshot gives the same bytes.
		b2, err := Encode(got.Clone(), id)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encode differs (err=%v)", err)
		}
		// Any single-byte change is caught.
		i := rapid.IntRange(0, len(b)-1).Draw(t, "flipAt")
		b[i] ^= rapid.ByteRange(1, 255).Draw(t, "flipMask")
		if _, err := Decode(b, DefaultLimits()); err == nil || !isSentinel(err) {
			t.Fatalf("flip at %d: got %v", i, err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	id := testID(f, 1)
	for _, s := range []*Snapshot{cooperativeSnapshot(id), transparentSnapshot(id, 2), baseSnapshot(id, Transparent),
		annotated(cooperativeSnapshot(id)), annotated(transparentSnapshot(id, 1)), withOutbox(cooperativeSnapshot(id)), withPublishes(transparentSnapshot(id, 1))} {
		b, err := Encode(s, id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("WMSNAP\x01"))
	f.Add([]byte{})
	lim := Limits{MaxMemoryPages: 8, MaxGlobals: 64, MaxHorizon: 256, MaxLedgerEntries: 32, MaxLedgerBytes: 4096, MaxStateBytes: 1 << 16, MaxEnvelopeBytes: 1024}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		if _, err := Decode(b, lim); err != nil && !isSentinel(err) {
			t.Fatalf("untyped error: %v", err)
		}
		// Past the signature: whatever parses must re-encode to exactly
		// the input body (the format has one encoding per snapshot) and
		// must satisfy Validate.
		s, err := decode(b, lim, false)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if !bytes.Equal(b, in) {
			t.Fatalf("decode modified its input")
		}
		p, err := makePlan(s)
		if err != nil {
			t.Fatalf("decoded snapshot fails Validate: %v", err)
		}
		var body []byte
		_ = p.each(func(piece []byte) error { body = append(body, piece...); return nil })
		if !bytes.Equal(body, b[:len(b)-sigSize]) {
			t.Fatalf("decoded snapshot re-encodes differently")
		}
	})
}
