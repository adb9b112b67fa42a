package snapshot

import (
	"bytes"
	"errors"
	"testing"
)

func withOutbox(s *Snapshot) *Snapshot {
	s.Outbox = &Outbox{OutSeq: 9, Entries: []OutboxEntry{
		{Seq: 3, Target: 0xabcdef, Payload: []byte("ping 1")},
		{Seq: 7, Target: 1, Payload: nil},
		{Seq: 9, Target: 0xabcdef, Payload: []byte("ping 2")},
	}}
	return s
}

func TestOutboxRoundTrip(t *testing.T) {
	id := testID(t, 1)
	for name, s := range map[string]*Snapshot{
		"transparent":           withOutbox(transparentSnapshot(id, 2)),
		"cooperative annotated": withOutbox(annotated(cooperativeSnapshot(id))),
		"empty outbox":          func() *Snapshot { s := cooperativeSnapshot(id); s.Outbox = &Outbox{OutSeq: 4}; return s }(),
	} {
		b, err := Encode(s, id)
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		if b[offVersion] != VersionOutbox {
			t.Fatalf("%s: version %d, want %d", name, b[offVersion], VersionOutbox)
		}
		got, err := Decode(b, DefaultLimits())
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		assertSame(t, s, got)
		if got.Outbox == nil || got.Outbox.OutSeq != s.Outbox.OutSeq || len(got.Outbox.Entries) != len(s.Outbox.Entries) {
			t.Fatalf("%s: outbox %+v, want %+v", name, got.Outbox, s.Outbox)
		}
		if (got.Annotations == nil) != (s.Annotations == nil) {
			t.Fatalf("%s: annotations presence changed in the round trip", name)
		}
		b2, err := Encode(got.Clone(), id)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%s: re-encode differs (err=%v)", name, err)
		}
	}
}

func TestOutboxAbsentKeepsOlderVersion(t *testing.T) {
	id := testID(t, 1)
	b, err := Encode(annotated(cooperativeSnapshot(id)), id)
	if err != nil {
		t.Fatal(err)
	}
	if b[offVersion] != VersionAnnotated {
		t.Fatalf("version %d, want %d without an outbox", b[offVersion], VersionAnnotated)
	}
}

func TestOutboxInvalid(t *testing.T) {
	id := testID(t, 1)
	for name, o := range map[string]*Outbox{
		"seq zero":       {OutSeq: 3, Entries: []OutboxEntry{{Seq: 0}}},
		"seq above next": {OutSeq: 3, Entries: []OutboxEntry{{Seq: 4}}},
		"not increasing": {OutSeq: 5, Entries: []OutboxEntry{{Seq: 2}, {Seq: 2}}},
		"would wrap":     {OutSeq: ^uint64(0)},
	} {
		s := cooperativeSnapshot(id)
		s.Outbox = o
		if _, err := Encode(s, id); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func TestOutboxLimits(t *testing.T) {
	id := testID(t, 1)
	b, err := Encode(withOutbox(cooperativeSnapshot(id)), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b, Limits{MaxOutboxEntries: 2}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("3 entries under a cap of 2: got %v, want ErrTooLarge", err)
	}
	if _, err := Decode(b, Limits{MaxOutboxBytes: 11}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("12 payload bytes under a cap of 11: got %v, want ErrTooLarge", err)
	}
	for cut := 1; cut < 40; cut++ {
		if _, err := Decode(b[:len(b)-sigSize-cut], DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut %d: got %v, want ErrMalformed", cut, err)
		}
	}
}

func TestOutboxCloneIsDeep(t *testing.T) {
	id := testID(t, 1)
	s := withOutbox(cooperativeSnapshot(id))
	c := s.Clone()
	c.Outbox.Entries[0].Payload[0] = 'X'
	if s.Outbox.Entries[0].Payload[0] != 'p' {
		t.Fatalf("Clone shares outbox payloads")
	}
}

func FuzzDecodeOutbox(f *testing.F) {
	id := testID(f, 1)
	for _, s := range []*Snapshot{withOutbox(cooperativeSnapshot(id)), withOutbox(annotated(transparentSnapshot(id, 1)))} {
		b, err := Encode(s, id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-10])
	}
	lim := Limits{MaxMemoryPages: 8, MaxGlobals: 64, MaxHorizon: 256, MaxLedgerEntries: 32, MaxLedgerBytes: 4096,
		MaxStateBytes: 1 << 16, MaxEnvelopeBytes: 1024, MaxOutboxEntries: 64, MaxOutboxBytes: 4096}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode(b, lim, false)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("untyped error: %v", err)
			}
			return
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
