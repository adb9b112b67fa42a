package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func annotated(s *Snapshot) *Snapshot {
	s.Annotations = &Annotations{
		Name: "c1", KindName: "counter",
		Counters: Counters{EventsProcessed: 5, EventsEmitted: 4, Errors: 1, Snapshots: 3, CPUNanos: 12345, LogsDropped: 2},
		Logs: []LogLine{
			{UnixNano: 1_700_000_000_000_000_000, Level: 1, Text: "started"},
			{UnixNano: 1_700_000_000_000_000_001, Level: 3, Text: "ünïcode error"},
			{UnixNano: -1, Level: 0, Text: ""},
		},
	}
	return s
}

func TestAnnotationsRoundTrip(t *testing.T) {
	id := testID(t, 1)
	for name, s := range map[string]*Snapshot{
		"cooperative": annotated(cooperativeSnapshot(id)),
		"transparent": annotated(transparentSnapshot(id, 0, 3)),
		"empty":       func() *Snapshot { s := baseSnapshot(id, Transparent); s.Annotations = &Annotations{}; return s }(),
	} {
		t.Run(name, func(t *testing.T) {
			b := mustEncode(t, s, id)
			if b[offVersion] != VersionAnnotated {
				t.Fatalf("annotated snapshot encoded as version %d", b[offVersion])
			}
			got, err := Decode(b, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if got.Annotations == nil {
				t.Fatal("annotations lost")
			}
			assertSame(t, s, got)
			if again := mustEncode(t, got, id); !bytes.Equal(again, b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

// An unannotated snapshot is still version 1, byte for byte what earlier
// builds wrote, and decodes without annotations.
func TestUnannotatedStaysVersion1(t *testing.T) {
	id := testID(t, 1)
	s := transparentSnapshot(id, 1)
	plain := mustEncode(t, s, id)
	if plain[offVersion] != Version {
		t.Fatalf("version %d, want %d", plain[offVersion], Version)
	}
	got, err := Decode(plain, DefaultLimits())
	if err != nil || got.Annotations != nil {
		t.Fatalf("got %v, annotations %v", err, got.Annotations)
	}
	ann := mustEncode(t, annotated(s), id)
	// The annotated body is the version 1 body, version byte aside, plus
	// the trailing section.
	body := plain[:len(plain)-sigSize]
	if !bytes.Equal(ann[:offVersion], body[:offVersion]) || !bytes.Equal(ann[offVersion+1:len(body)], body[offVersion+1:]) {
		t.Fatal("annotated body does not extend the version 1 body")
	}
	if n, _ := EncodedSize(s); n != len(ann) {
		t.Fatalf("EncodedSize %d, encoded %d", n, len(ann))
	}
}

func TestAnnotationsBounds(t *testing.T) {
	id := testID(t, 1)
	long := strings.Repeat("x", MaxAnnotationName+1)
	for name, a := range map[string]*Annotations{
		"long name":      {Name: long},
		"long kind name": {KindName: long},
		"too many lines": {Logs: make([]LogLine, MaxLogLines+1)},
		"too much text":  {Logs: []LogLine{{Text: strings.Repeat("y", MaxLogBytes/2+1)}, {Text: strings.Repeat("y", MaxLogBytes/2)}}},
		"bad level":      {Logs: []LogLine{{Level: maxLogLevel + 1}}},
	} {
		s := baseSnapshot(id, Transparent)
		s.Annotations = a
		if _, err := Encode(s, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode got %v, want ErrInvalid", name, err)
		}
	}
	// At the bounds exactly it encodes and decodes.
	s := baseSnapshot(id, Transparent)
	lines := make([]LogLine, MaxLogLines)
	for i := range lines {
		lines[i] = LogLine{Level: 2, Text: strings.Repeat("z", MaxLogBytes/MaxLogLines)}
	}
	s.Annotations = &Annotations{Name: long[1:], KindName: long[1:], Logs: lines}
	got, err := Decode(mustEncode(t, s, id), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, s, got)
}

func TestTrimLogs(t *testing.T) {
	var lines []LogLine
	for i := range 3 * MaxLogLines {
		lines = append(lines, LogLine{UnixNano: int64(i), Text: strings.Repeat("a", 1000)})
	}
	got := TrimLogs(lines)
	if want := MaxLogBytes / 1000; len(got) != want || got[len(got)-1].UnixNano != int64(len(lines)-1) {
		t.Fatalf("kept %d lines ending at %d, want the newest %d", len(got), got[len(got)-1].UnixNano, want)
	}
	short := lines[:10]
	if got := TrimLogs(short); len(got) != 10 {
		t.Fatalf("kept %d of 10 short lines", len(got))
	}
	huge := []LogLine{{Text: strings.Repeat("é", MaxLogBytes)}}
	got = TrimLogs(huge)
	if len(got) != 1 || len(got[0].Text) > MaxLogBytes || !strings.HasPrefix(huge[0].Text, got[0].Text) || len(got[0].Text)%2 != 0 {
		t.Fatalf("one oversized line trimmed to %d bytes", len(got[0].Text))
	}
}

// Hand-forged sections, re-signed so that only the structural checks can
// refuse them.
func TestAnnotationsForged(t *testing.T) {
	id := testID(t, 1)
	enc := mustEncode(t, annotated(baseSnapshot(id, Transparent)), id)
	body := len(enc) - sigSize
	a := annotated(baseSnapshot(id, Transparent)).Annotations
	secLen := a.encodedSize()
	secAt := body - secLen // payload start; its u32 length sits just before
	le := binary.LittleEndian
	edit := func(f func(b []byte) []byte) []byte {
		b := f(bytes.Clone(enc))
		return resign(b, id)
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"section version", edit(func(b []byte) []byte { b[secAt] = 9; return b }), ErrUnsupportedVersion},
		{"length too long", edit(func(b []byte) []byte { le.PutUint32(b[secAt-4:], uint32(secLen+1)); return b }), ErrMalformed},
		{"length too short", edit(func(b []byte) []byte { le.PutUint32(b[secAt-4:], uint32(secLen-1)); return b }), ErrMalformed},
		{"length huge", edit(func(b []byte) []byte { le.PutUint32(b[secAt-4:], 1<<31); return b }), ErrTooLarge},
		{"name length past the end", edit(func(b []byte) []byte { b[secAt+1] = 255; return b }), ErrMalformed},
		{"line count over the bound", edit(func(b []byte) []byte {
			le.PutUint16(b[secAt+3+len(a.Name)+len(a.KindName)+counterCount*8:], MaxLogLines+1)
			return b
		}), ErrMalformed},
		{"bad level", edit(func(b []byte) []byte { b[secAt+annotationsFixed+len(a.Name)+len(a.KindName)+8] = 7; return b }), ErrMalformed},
		{"section cut", resign(append(bytes.Clone(enc[:body-1]), enc[body:]...), id), ErrMalformed},
	}
	for _, c := range cases {
		if _, err := Decode(c.b, DefaultLimits()); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// FuzzDecodeAnnotations: the section decoder never panics, returns only
// the package's sentinels, and whatever it accepts is valid and encodes
// back to exactly its input (one encoding per section).
func FuzzDecodeAnnotations(f *testing.F) {
	id := testID(f, 1)
	a := annotated(baseSnapshot(id, Transparent)).Annotations
	b := appendAnnotations(nil, a)
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add(appendAnnotations(nil, &Annotations{}))
	f.Add([]byte{annotationsVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAnnotations(b)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if err := a.validate(); err != nil {
			t.Fatalf("accepted annotations fail validate: %v", err)
		}
		if a.encodedSize() != len(b) || !bytes.Equal(appendAnnotations(nil, a), b) {
			t.Fatal("accepted annotations re-encode differently")
		}
	})
}
