package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
)

func testID(t testing.TB, n byte) identity.Identity {
	t.Helper()
	seed := bytes.Repeat([]byte{n}, 32)
	id, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fillPage writes a deterministic, non-zero, non-repeating pattern.
func fillPage(seed uint64) []byte {
	p := make([]byte, PageSize)
	x := seed*0x9e3779b97f4a7c15 | 1
	for i := 0; i < PageSize; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(p[i:], x)
	}
	return p
}

func baseSnapshot(id identity.Identity, mode Mode) *Snapshot {
	s := &Snapshot{
		ModuleDigest: sha256.Sum256([]byte("module")),
		EntityID:     id.EntityID(),
		Sequence:     7,
		Mode:         mode,
		InputSeq:     1234,
	}
	s.ChainHead = chain.Next(chain.Genesis(id.Origin()), chain.GenesisHash(id.Origin()), 99)
	s.HeadHash = chain.PayloadHash([]byte("last output"))
	s.Horizon = map[uint64]uint64{5: 1, 3: 9, 1 << 63: 2}
	return s
}

func transparentSnapshot(id identity.Identity, pages ...uint32) *Snapshot {
	s := baseSnapshot(id, Transparent)
	s.MemoryPages = 16
	for _, i := range pages {
		s.Pages = append(s.Pages, Page{Index: i, Data: fillPage(uint64(i) + 1)})
	}
	s.Globals = []Global{
		{Index: 0, Type: abi.I32, Bits: 0xffffffff},
		{Index: 2, Type: abi.I64, Bits: 1 << 63},
		{Index: 3, Type: abi.F32, Bits: 0x3f800000},
		{Index: 9, Type: abi.F64, Bits: 0x3ff0000000000000},
	}
	return s
}

func cooperativeSnapshot(id identity.Identity) *Snapshot {
	s := baseSnapshot(id, Cooperative)
	s.State = []byte("guest state bytes")
	s.Ledger = []Subscription{
		{Publisher: "node-a", Channel: "prices", Token: []byte{1, 2, 3}},
		{Publisher: "node-b", Channel: "", Token: nil},
		{Publisher: "", Channel: "ünïcode", Token: []byte{0}},
	}
	s.Envelope = bytes.Repeat([]byte{0xee}, 120)
	return s
}

// normalize maps the empty forms Decode produces onto the ones a caller may
// build, so DeepEqual compares content.
func normalize(s *Snapshot) *Snapshot {
	c := s.Clone()
	if len(c.Horizon) == 0 {
		c.Horizon = map[uint64]uint64{}
	}
	nilIfEmpty := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	if len(c.Ledger) == 0 {
		c.Ledger = nil
	}
	for i := range c.Ledger {
		c.Ledger[i].Token = nilIfEmpty(c.Ledger[i].Token)
	}
	if len(c.Pages) == 0 {
		c.Pages = nil
	}
	if len(c.Globals) == 0 {
		c.Globals = nil
	}
	c.State = nilIfEmpty(c.State)
	c.Envelope = nilIfEmpty(c.Envelope)
	if c.Outbox != nil {
		for i := range c.Outbox.Entries {
			c.Outbox.Entries[i].Payload = nilIfEmpty(c.Outbox.Entries[i].Payload)
		}
	}
	if c.Annotations != nil && len(c.Annotations.Logs) == 0 {
		c.Annotations.Logs = nil
	}
	return c
}

// fataler is what both *testing.T and *rapid.T offer.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func assertSame(t fataler, want, got *Snapshot) {
	t.Helper()
	if !reflect.DeepEqual(normalize(want), normalize(got)) {
		t.Fatalf("round trip differs:\nwant %+v\n got %+v", summary(want), summary(got))
	}
}

func summary(s *Snapshot) Snapshot {
	c := *s
	c.Pages = nil
	return c
}

func mustEncode(t testing.TB, s *Snapshot, id identity.Identity) []byte {
	t.Helper()
	b, err := Encode(s, id)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

// resign re-signs a hand-edited encoding with the right key, so a test can
// show that the decoder's structural checks stand on their own.
func resign(b []byte, id identity.Identity) []byte {
	sum := sha256.Sum256(b[:len(b)-sigSize])
	copy(b[len(b)-sigSize:], id.Sign(signedMessage(sum[:])))
	return b
}

func isSentinel(err error) bool {
	for _, e := range []error{ErrMalformed, ErrUnsupportedVersion, ErrBadSignature, ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func TestRoundTrip(t *testing.T) {
	id := testID(t, 1)
	big := baseSnapshot(id, Cooperative)
	big.Horizon = make(map[uint64]uint64, 100000)
	for i := range uint64(100000) {
		big.Horizon[i*0x9e3779b97f4a7c15] = i
	}
	empty := baseSnapshot(id, Transparent)
	empty.Horizon = nil
	for name, s := range map[string]*Snapshot{
		"transparent":       transparentSnapshot(id, 0, 3, 15),
		"transparent-empty": empty,
		"cooperative":       cooperativeSnapshot(id),
		"big-horizon":       big,
	} {
		t.Run(name, func(t *testing.T) {
			b := mustEncode(t, s, id)
			if len(s.Signature) != sigSize || !bytes.Equal(b[len(b)-sigSize:], s.Signature) {
				t.Fatalf("Encode did not set the signature it appended")
			}
			got, err := Decode(b, DefaultLimits())
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertSame(t, s, got)
			if got.LiveBytes() != s.LiveBytes() {
				t.Fatalf("LiveBytes %d, want %d", got.LiveBytes(), s.LiveBytes())
			}
			if n, err := EncodedSize(s); err != nil || n != len(b) {
				t.Fatalf("EncodedSize = %d, %v; Encode produced %d", n, err, len(b))
			}
			// ed25519 is deterministic, so every entry point yields the same bytes.
			var w bytes.Buffer
			if n, err := EncodeTo(&w, s, id); err != nil || n != int64(len(b)) || !bytes.Equal(w.Bytes(), b) {
				t.Fatalf("EncodeTo differs from Encode (n=%d, err=%v)", n, err)
			}
			prefix := []byte("prefix")
			ab, err := AppendEncode(prefix, s, id)
			if err != nil || !bytes.Equal(ab[:len(prefix)], prefix) || !bytes.Equal(ab[len(prefix):], b) {
				t.Fatalf("AppendEncode differs from Encode (err=%v)", err)
			}
		})
	}
}

func TestLiveBytes(t *testing.T) {
	id := testID(t, 1)
	if got := transparentSnapshot(id, 1, 2).LiveBytes(); got != 2*PageSize {
		t.Fatalf("transparent LiveBytes = %d", got)
	}
	if got := cooperativeSnapshot(id).LiveBytes(); got != len("guest state bytes") {
		t.Fatalf("cooperative LiveBytes = %d", got)
	}
}

func TestEncodeDropsZeroPages(t *testing.T) {
	id := testID(t, 1)
	s := transparentSnapshot(id, 1, 2, 3)
	s.Pages[1].Data = make([]byte, PageSize)
	s.Pages = append(s.Pages, Page{Index: 9, Data: make([]byte, PageSize)})
	got, err := Decode(mustEncode(t, s, id), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Pages) != 2 || got.Pages[0].Index != 1 || got.Pages[1].Index != 3 {
		t.Fatalf("pages after encode: %+v", pageIndexes(got))
	}
	if len(s.Pages) != 4 {
		t.Fatalf("Encode modified the caller's page list")
	}
}

func pageIndexes(s *Snapshot) []uint32 {
	var out []uint32
	for _, p := range s.Pages {
		out = append(out, p.Index)
	}
	return out
}

func TestDecodeAliasesAndClone(t *testing.T) {
	id := testID(t, 1)
	b := mustEncode(t, transparentSnapshot(id, 4), id)
	s, err := Decode(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	page := s.Pages[0].Data
	if cap(page) != PageSize {
		t.Fatalf("aliased page has cap %d; appending would write into the input", cap(page))
	}
	old := page[0]
	idx := bytes.Index(b, page[:64])
	b[idx] ^= 0xff
	if s.Pages[0].Data[0] == old {
		t.Fatalf("decoded page does not alias the input buffer")
	}
	if c.Pages[0].Data[0] != old {
		t.Fatalf("Clone shares memory with the input buffer")
	}
}

func TestWrongIdentity(t *testing.T) {
	id, other := testID(t, 1), testID(t, 2)
	s := cooperativeSnapshot(id)
	if _, err := Encode(s, other); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("Encode with another key: %v", err)
	}
	if _, err := EncodeTo(&bytes.Buffer{}, s, other); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("EncodeTo with another key: %v", err)
	}
	if _, err := Encode(s, identity.Identity{}); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("Encode with no key: %v", err)
	}
	if s.Signature != nil {
		t.Fatalf("refused Encode still set a signature")
	}
}

func TestEncodeValidates(t *testing.T) {
	id := testID(t, 1)
	cases := map[string]func(s *Snapshot){
		"unknown mode":         func(s *Snapshot) { s.Mode = 3 },
		"zero mode":            func(s *Snapshot) { s.Mode = 0 },
		"short page":           func(s *Snapshot) { s.Pages[0].Data = s.Pages[0].Data[:PageSize-1] },
		"long page":            func(s *Snapshot) { s.Pages[0].Data = append(s.Pages[0].Data, 1) },
		"page beyond memory":   func(s *Snapshot) { s.MemoryPages = 3 },
		"unsorted pages":       func(s *Snapshot) { s.Pages[0], s.Pages[1] = s.Pages[1], s.Pages[0] },
		"duplicate pages":      func(s *Snapshot) { s.Pages[1].Index = s.Pages[0].Index },
		"unsorted globals":     func(s *Snapshot) { s.Globals[0], s.Globals[1] = s.Globals[1], s.Globals[0] },
		"duplicate globals":    func(s *Snapshot) { s.Globals[1].Index = s.Globals[0].Index },
		"v128 global":          func(s *Snapshot) { s.Globals[0].Type = abi.V128 },
		"funcref global":       func(s *Snapshot) { s.Globals[0].Type = abi.FuncRef },
		"i32 high bits":        func(s *Snapshot) { s.Globals[0].Bits = 1 << 32 },
		"f32 high bits":        func(s *Snapshot) { s.Globals[2].Bits |= 1 << 40 },
		"state in transparent": func(s *Snapshot) { s.State = []byte{1} },
		"foreign chain head":   func(s *Snapshot) { s.ChainHead.Origin++ },
		"long publisher":       func(s *Snapshot) { s.Ledger = []Subscription{{Publisher: string(make([]byte, 70000))}} },
		"memory in cooperative": func(s *Snapshot) {
			s.Mode = Cooperative
			s.Pages, s.Globals = nil, nil
		},
		"globals in cooperative": func(s *Snapshot) {
			s.Mode = Cooperative
			s.MemoryPages, s.Pages = 0, nil
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := transparentSnapshot(id, 1, 4)
			mutate(s)
			if _, err := Encode(s, id); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Encode: got %v, want ErrInvalid", err)
			}
			if _, err := EncodeTo(&bytes.Buffer{}, s, id); !errors.Is(err, ErrInvalid) {
				t.Fatalf("EncodeTo: got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestTamperEveryByte(t *testing.T) {
	id := testID(t, 1)
	b := mustEncode(t, cooperativeSnapshot(id), id)
	for i := range b {
		for _, mask := range []byte{0x01, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= mask
			s, err := Decode(c, DefaultLimits())
			if err == nil {
				t.Fatalf("flipping bit %#x of byte %d decoded: %+v", mask, i, summary(s))
			}
			if !isSentinel(err) {
				t.Fatalf("byte %d: untyped error %v", i, err)
			}
		}
	}
}

func TestTamperPages(t *testing.T) {
	id := testID(t, 1)
	b := mustEncode(t, transparentSnapshot(id, 2, 5), id)
	pagesStart := len(b) - sigSize - 2*PageSize
	var positions []int
	for i := range pagesStart {
		positions = append(positions, i) // every header and section byte
	}
	for i := pagesStart; i < len(b); i += 509 { // a spread over the bulk
		positions = append(positions, i)
	}
	positions = append(positions, pagesStart+PageSize-1, pagesStart+PageSize, len(b)-sigSize-1, len(b)-1)
	for _, i := range positions {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := Decode(c, DefaultLimits()); err == nil || !isSentinel(err) {
			t.Fatalf("flip at byte %d: got %v", i, err)
		}
	}
}

func TestTruncation(t *testing.T) {
	id := testID(t, 1)
	for name, s := range map[string]*Snapshot{
		"cooperative": cooperativeSnapshot(id),
		"transparent": transparentSnapshot(id, 0),
	} {
		b := mustEncode(t, s, id)
		for n := range len(b) {
			if _, err := Decode(b[:n], DefaultLimits()); err == nil || !isSentinel(err) {
				t.Fatalf("%s truncated to %d of %d bytes: got %v", name, n, len(b), err)
			}
		}
	}
}

func TestTrailingBytes(t *testing.T) {
	id := testID(t, 1)
	b := mustEncode(t, cooperativeSnapshot(id), id)
	for _, extra := range [][]byte{{0}, make([]byte, 64), make([]byte, PageSize)} {
		if _, err := Decode(append(bytes.Clone(b), extra...), DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d trailing bytes: got %v", len(extra), err)
		}
	}
}

func TestSignatureChecks(t *testing.T) {
	id, other := testID(t, 1), testID(t, 2)
	s := cooperativeSnapshot(id)
	b := mustEncode(t, s, id)

	// A structurally perfect snapshot claiming another entity, signed by
	// someone else, must not pass.
	o := cooperativeSnapshot(other)
	ob := mustEncode(t, o, other)
	copy(ob[len(ob)-sigSize:], b[len(b)-sigSize:])
	if _, err := Decode(ob, DefaultLimits()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("borrowed signature: %v", err)
	}
	// The right key over the body without the domain must not pass.
	c := bytes.Clone(b)
	sum := sha256.Sum256(c[:len(c)-sigSize])
	copy(c[len(c)-sigSize:], id.Sign(sum[:]))
	if _, err := Decode(c, DefaultLimits()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("undomained signature: %v", err)
	}
	// Swapping the entity id for another key's (and fixing the chain head
	// so the fields stay consistent) breaks the signature.
	c = bytes.Clone(b)
	e := other.EntityID()
	copy(c[offEntityID:], e[:])
	binary.LittleEndian.PutUint64(c[offChainHead:], other.Origin())
	if _, err := Decode(c, DefaultLimits()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("swapped entity: %v", err)
	}
}

// TestForgedStructure edits encodings and re-signs them with the right key,
// so each case is caught by the decoder's own checks, not the signature.
func TestForgedStructure(t *testing.T) {
	id := testID(t, 1)
	plain := func() *Snapshot { // pages only, so the index table sits right after the header
		s := transparentSnapshot(id, 1, 4)
		s.Horizon, s.Globals = nil, nil
		return s
	}
	le := binary.LittleEndian
	cases := []struct {
		name string
		s    *Snapshot
		edit func(b []byte) []byte
		want error
	}{
		{"bad magic", plain(), func(b []byte) []byte { b[0] = 'X'; return b }, ErrMalformed},
		{"version 0", plain(), func(b []byte) []byte { b[offVersion] = 0; return b }, ErrUnsupportedVersion},
		{"version 5", plain(), func(b []byte) []byte { b[offVersion] = 5; return b }, ErrUnsupportedVersion},
		{"version 4 without an outbox", plain(), func(b []byte) []byte { b[offVersion] = VersionPublish; return b }, ErrMalformed},
		{"version 2 without annotations", plain(), func(b []byte) []byte { b[offVersion] = VersionAnnotated; return b }, ErrMalformed},
		{"unknown mode", plain(), func(b []byte) []byte { b[offMode] = 9; return b }, ErrMalformed},
		{"mode switched to cooperative", plain(), func(b []byte) []byte { b[offMode] = byte(Cooperative); return b }, ErrMalformed},
		{"unsorted pages", plain(), func(b []byte) []byte {
			le.PutUint32(b[headerSize:], 4)
			le.PutUint32(b[headerSize+4:], 1)
			return b
		}, ErrMalformed},
		{"duplicate pages", plain(), func(b []byte) []byte { le.PutUint32(b[headerSize+4:], 1); return b }, ErrMalformed},
		{"page beyond memory", plain(), func(b []byte) []byte { le.PutUint32(b[offMemoryPages:], 4); return b }, ErrMalformed},
		{"more pages than memory", plain(), func(b []byte) []byte { le.PutUint32(b[offMemoryPages:], 1); return b }, ErrMalformed},
		{"page count beyond input", plain(), func(b []byte) []byte { le.PutUint32(b[offPageCount:], 3); return b }, ErrMalformed},
		{"page count short", plain(), func(b []byte) []byte { le.PutUint32(b[offPageCount:], 1); return b }, ErrMalformed},
		{"stored zero page", plain(), func(b []byte) []byte {
			start := headerSize + 8
			clear(b[start : start+PageSize])
			return b
		}, ErrMalformed},
		{"state count huge", plain(), func(b []byte) []byte { le.PutUint32(b[offStateLen:], 1<<28-1); return b }, ErrMalformed},
		{"horizon count huge", plain(), func(b []byte) []byte { le.PutUint32(b[offHorizonCount:], 1<<20); return b }, ErrMalformed},
		{"ledger count huge", plain(), func(b []byte) []byte { le.PutUint32(b[offLedgerCount:], 1<<16); return b }, ErrMalformed},
		{"unsorted horizon", baseSnapshot(id, Cooperative), func(b []byte) []byte {
			first := bytes.Clone(b[headerSize : headerSize+16])
			copy(b[headerSize:], b[headerSize+16:headerSize+32])
			copy(b[headerSize+16:], first)
			return b
		}, ErrMalformed},
		{"duplicate horizon sender", baseSnapshot(id, Cooperative), func(b []byte) []byte {
			copy(b[headerSize+16:headerSize+24], b[headerSize:headerSize+8])
			return b
		}, ErrMalformed},
		{"bad global type", transparentSnapshot(id), func(b []byte) []byte {
			off := headerSize + 3*horizonEntrySize + 4
			b[off] = byte(abi.V128)
			return b
		}, ErrMalformed},
		{"unsorted globals", transparentSnapshot(id), func(b []byte) []byte {
			off := headerSize + 3*horizonEntrySize
			le.PutUint32(b[off:], 5)
			return b
		}, ErrMalformed},
		{"ledger length beyond input", cooperativeSnapshot(id), func(b []byte) []byte {
			off := headerSize + 3*horizonEntrySize
			le.PutUint32(b[off+4:], 1<<20)
			return b
		}, ErrMalformed},
		{"foreign chain head", cooperativeSnapshot(id), func(b []byte) []byte { b[offChainHead] ^= 1; return b }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := resign(tc.edit(mustEncode(t, tc.s, id)), id)
			s, err := Decode(b, DefaultLimits())
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (snapshot %v), want %v", err, s != nil, tc.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	id := testID(t, 1)
	tr := mustEncode(t, transparentSnapshot(id, 1, 4), id)
	co := mustEncode(t, cooperativeSnapshot(id), id)
	cases := []struct {
		name string
		b    []byte
		lim  Limits
	}{
		{"memory pages", tr, Limits{MaxMemoryPages: 15}},
		{"globals", tr, Limits{MaxGlobals: 3}},
		{"horizon", co, Limits{MaxHorizon: 2}},
		{"ledger entries", co, Limits{MaxLedgerEntries: 2}},
		{"ledger bytes", co, Limits{MaxLedgerBytes: 10}},
		{"state", co, Limits{MaxStateBytes: 5}},
		{"envelope", co, Limits{MaxEnvelopeBytes: 119}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.b, tc.lim); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
		})
	}
	// At exactly the cap, both pass; a zero Limits means the defaults.
	exact := Limits{MaxMemoryPages: 16, MaxGlobals: 4, MaxHorizon: 3}
	if _, err := Decode(tr, exact); err != nil {
		t.Fatalf("at the cap: %v", err)
	}
	exact = Limits{MaxLedgerEntries: 3, MaxStateBytes: 17, MaxEnvelopeBytes: 120, MaxLedgerBytes: 6 + 6 + 3 + 6 + 6 + 9 + 1}
	if _, err := Decode(co, exact); err != nil {
		t.Fatalf("at the cap: %v", err)
	}
	if _, err := Decode(co, Limits{}); err != nil {
		t.Fatalf("zero Limits: %v", err)
	}
	if MaxEncodedSize(Limits{}) != MaxEncodedSize(DefaultLimits()) || MaxEncodedSize(DefaultLimits()) < int64(DefaultMaxMemoryPages)*PageSize {
		t.Fatalf("MaxEncodedSize does not follow the defaults")
	}
	if int64(len(tr)) > MaxEncodedSize(Limits{MaxMemoryPages: 16, MaxGlobals: 4, MaxHorizon: 3}) {
		t.Fatalf("MaxEncodedSize below an accepted encoding")
	}
}

func TestDecodeGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {}, []byte("WMSNA"), []byte("WMSNAP"), []byte("WMSNAP\x01"), make([]byte, 300), append([]byte("WMSNAP\x01\x01"), make([]byte, 300)...)} {
		if _, err := Decode(b, DefaultLimits()); err == nil || !isSentinel(err) {
			t.Fatalf("Decode(%q): %v", b[:min(len(b), 10)], err)
		}
	}
}

func TestFiles(t *testing.T) {
	id := testID(t, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "d.snap")
	s := transparentSnapshot(id, 0, 7)
	b := mustEncode(t, s, id)
	if err := WriteFile(path, []byte("old contents")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, b); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	got, err := ReadFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, s, got)

	if _, err := ReadFile(path, Limits{MaxMemoryPages: 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize file: %v", err)
	}
	if err := os.WriteFile(path, b[:len(b)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path, DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated file: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), DefaultLimits()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ReadFile(dir, DefaultLimits()); err == nil {
		t.Fatalf("reading a directory succeeded")
	}
	if err := WriteFile(filepath.Join(dir, "no", "such", "dir"), b); err == nil {
		t.Fatalf("WriteFile into a missing directory succeeded")
	}
}

func TestPageHash(t *testing.T) {
	// Published XXH64 seed-0 vectors; the 63-byte one walks every code path.
	for in, want := range map[string]uint64{
		"":     0xef46db3751d8e999,
		"a":    0xd24ec4f1a98c6e5b,
		"as":   0x1c330fb2d66be179,
		"asd":  0x631c37ce72a97393,
		"asdf": 0x415872f599cea71e,
		"Call me Ishmael. Some years ago--never mind how long precisely-": 0x02a2e85470d6fd96,
		"0123456789abcdef0123456789abcdef":                                0x642a94958e71e6c5,
	} {
		if got := PageHash([]byte(in)); got != want {
			t.Errorf("PageHash(%q) = %#x, want %#x", in, got, want)
		}
	}
	id := testID(t, 1)
	s := transparentSnapshot(id, 1, 2, 9)
	h := PageHashes(s)
	if len(h) != 3 || h[1] == h[2] || h[2] == h[9] {
		t.Fatalf("PageHashes: %v", h)
	}
	before := h[2]
	s.Pages[1].Data[PageSize-1] ^= 1
	if after := PageHashes(s)[2]; after == before || PageHashes(s)[1] != h[1] {
		t.Fatalf("a one-bit change in page 2 did not change only its hash")
	}
}

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

var errSink = errors.New("sink full")

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errSink
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodeToWriteError(t *testing.T) {
	id := testID(t, 1)
	s := transparentSnapshot(id, 1, 2)
	size, err := EncodedSize(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{0, 100, headerSize + PageSize, size - 1} {
		s.Signature = nil
		n, err := EncodeTo(&failAfter{n: at}, s, id)
		if !errors.Is(err, errSink) || n != int64(at) {
			t.Fatalf("failing at %d: n=%d err=%v", at, n, err)
		}
		if s.Signature != nil {
			t.Fatalf("failed EncodeTo set a signature")
		}
	}
}
