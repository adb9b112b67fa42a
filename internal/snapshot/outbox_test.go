package snapshot

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
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
	for _, s := range []*Snapshot{withOutbox(cooperativeSnapshot(id)), withOutbox(annotated(transparentSnapshot(id, 1))),
		withPublishes(cooperativeSnapshot(id)), withPublishes(annotated(transparentSnapshot(id, 1)))} {
		b, err := Encode(s, id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-10])
	}
	lim := Limits{MaxMemoryPages: 8, MaxGlobals: 64, MaxHorizon: 256, MaxLedgerEntries: 32, MaxLedgerBytes: 4096,
		MaxStateBytes: 1 << 16, MaxEnvelopeBytes: 1024, MaxOutboxEntries: 64, MaxOutboxBytes: 4096, MaxPublishChannels: 16}
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

// withPublishes is an outbox of sends and publishes to two channels, one
// of whose earlier publishes (seq 2) was delivered already.
func withPublishes(s *Snapshot) *Snapshot {
	s.Outbox = &Outbox{OutSeq: 8, Entries: []OutboxEntry{
		{Seq: 1, Target: 0xabcdef, Payload: []byte("send 1")},
		{Seq: 4, Channel: "news/eu", Prev: 2, Payload: []byte("pub 4")},
		{Seq: 5, Channel: "a", Prev: 0, Payload: nil},
		{Seq: 6, Target: 0, Payload: []byte("a send to origin 0")},
		{Seq: 8, Channel: "news/eu", Prev: 4, Payload: []byte("pub 8")},
	}, LastPublish: []PublishMark{{Channel: "a", Seq: 5}, {Channel: "news/eu", Seq: 8}, {Channel: "quiet", Seq: 3}}}
	return s
}

func TestPublishOutboxRoundTrip(t *testing.T) {
	id := testID(t, 1)
	marksOnly := func() *Snapshot {
		s := cooperativeSnapshot(id)
		s.Outbox = &Outbox{OutSeq: 3, LastPublish: []PublishMark{{Channel: "x", Seq: 3}}}
		return s
	}
	for name, s := range map[string]*Snapshot{
		"transparent":           withPublishes(transparentSnapshot(id, 2)),
		"cooperative annotated": withPublishes(annotated(cooperativeSnapshot(id))),
		"all delivered":         marksOnly(),
	} {
		b, err := Encode(s, id)
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		if b[offVersion] != VersionPublish {
			t.Fatalf("%s: version %d, want %d", name, b[offVersion], VersionPublish)
		}
		got, err := Decode(b, DefaultLimits())
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		assertSame(t, s, got)
		if !reflect.DeepEqual(got.Outbox.LastPublish, s.Outbox.LastPublish) {
			t.Fatalf("%s: last publishes %v, want %v", name, got.Outbox.LastPublish, s.Outbox.LastPublish)
		}
		for i, e := range got.Outbox.Entries {
			w := s.Outbox.Entries[i]
			if e.Channel != w.Channel || e.Prev != w.Prev || e.Target != w.Target || !bytes.Equal(e.Payload, w.Payload) {
				t.Fatalf("%s: entry %d is %+v, want %+v", name, i, e, w)
			}
		}
		b2, err := Encode(got.Clone(), id)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%s: re-encode differs (err=%v)", name, err)
		}
	}
}

// An outbox of sends only keeps the version 3 bytes older builds read.
func TestSendOnlyOutboxStaysVersion3(t *testing.T) {
	id := testID(t, 1)
	s := withOutbox(cooperativeSnapshot(id))
	b := mustEncode(t, s, id)
	if b[offVersion] != VersionOutbox {
		t.Fatalf("version %d, want %d", b[offVersion], VersionOutbox)
	}
	// The layout is the version 3 one: 12 bytes, then 20 per entry plus
	// its payload, and nothing after.
	want := outboxFixed
	for _, e := range s.Outbox.Entries {
		want += outboxEntryFixed + len(e.Payload)
	}
	if got := s.Outbox.encodedSize(); got != want {
		t.Fatalf("send-only outbox encodes in %d bytes, version 3 takes %d", got, want)
	}
}

func TestPublishOutboxInvalid(t *testing.T) {
	id := testID(t, 1)
	marks := []PublishMark{{Channel: "c", Seq: 5}}
	for name, o := range map[string]*Outbox{
		"publish with a target":  {OutSeq: 5, Entries: []OutboxEntry{{Seq: 5, Target: 1, Channel: "c"}}, LastPublish: marks},
		"prev not before seq":    {OutSeq: 5, Entries: []OutboxEntry{{Seq: 5, Channel: "c", Prev: 5}}, LastPublish: marks},
		"send with a prev":       {OutSeq: 5, Entries: []OutboxEntry{{Seq: 4, Target: 1, Prev: 2}}, LastPublish: marks},
		"channel without a mark": {OutSeq: 5, Entries: []OutboxEntry{{Seq: 5, Channel: "d"}}, LastPublish: marks},
		"mark before the entry":  {OutSeq: 6, Entries: []OutboxEntry{{Seq: 6, Channel: "c", Prev: 5}}, LastPublish: marks},
		"name too long":          {OutSeq: 5, Entries: []OutboxEntry{{Seq: 5, Channel: strings.Repeat("x", 256)}}, LastPublish: []PublishMark{{Channel: strings.Repeat("x", 256), Seq: 5}}},
		"empty mark name":        {OutSeq: 5, LastPublish: []PublishMark{{Channel: "", Seq: 5}}},
		"marks unsorted":         {OutSeq: 5, LastPublish: []PublishMark{{Channel: "b", Seq: 1}, {Channel: "a", Seq: 2}}},
		"marks repeated":         {OutSeq: 5, LastPublish: []PublishMark{{Channel: "a", Seq: 1}, {Channel: "a", Seq: 2}}},
		"mark seq zero":          {OutSeq: 5, LastPublish: []PublishMark{{Channel: "a", Seq: 0}}},
		"mark seq above out seq": {OutSeq: 5, LastPublish: []PublishMark{{Channel: "a", Seq: 6}}},
	} {
		s := cooperativeSnapshot(id)
		s.Outbox = o
		if _, err := Encode(s, id); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func TestPublishOutboxLimitsAndTruncation(t *testing.T) {
	id := testID(t, 1)
	b := mustEncode(t, withPublishes(cooperativeSnapshot(id)), id)
	if _, err := Decode(b, Limits{MaxPublishChannels: 2}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("3 channels under a cap of 2: got %v, want ErrTooLarge", err)
	}
	if _, err := Decode(b, Limits{MaxPublishChannels: 3}); err != nil {
		t.Fatalf("3 channels under a cap of 3: %v", err)
	}
	for cut := 1; cut < 120; cut++ {
		if _, err := Decode(b[:len(b)-sigSize-cut], DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut %d: got %v, want ErrMalformed", cut, err)
		}
	}
	// A version 3 reading of version 4 bytes, and the other way round,
	// fail cleanly rather than misread.
	c := slices.Clone(b)
	c[offVersion] = VersionOutbox
	if _, err := Decode(resign(c, id), DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("version 4 bytes read as 3: got %v, want ErrMalformed", err)
	}
	b3 := mustEncode(t, withOutbox(cooperativeSnapshot(id)), id)
	b3[offVersion] = VersionPublish
	if _, err := Decode(resign(b3, id), DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("version 3 bytes read as 4: got %v, want ErrMalformed", err)
	}
}

func TestPublishOutboxCloneIsDeep(t *testing.T) {
	id := testID(t, 1)
	s := withPublishes(cooperativeSnapshot(id))
	c := s.Clone()
	c.Outbox.LastPublish[0].Seq = 99
	c.Outbox.Entries[1].Payload[0] = 'X'
	if s.Outbox.LastPublish[0].Seq != 5 || s.Outbox.Entries[1].Payload[0] != 'p' {
		t.Fatalf("Clone shares the last publishes or payloads")
	}
}
