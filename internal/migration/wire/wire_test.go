package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

var testDigest = "sha256:" + strings.Repeat("ab", 32)

func testPlan() Plan {
	return Plan{Origin: 0xfeed, KindDigest: testDigest, Source: "node-s", Target: "node-t", Orchestrator: "node-o", TransportIdentity: true}
}

// samples holds one valid message of every kind.
func samples() []Message {
	h := Header{ID: 0x1234_5678_9abc, Attempt: 2}
	return []Message{
		Start{Header: h, Plan: testPlan()},
		Prepare{Header: h, Plan: testPlan(), SnapshotSeq: 7, InputSeq: 41, TotalBytes: 10, ChunkCount: 2, Envelope: []byte{1, 2, 3}},
		NeedModule{Header: h, Digest: testDigest},
		ModuleDigest{Header: h, Digest: testDigest},
		SnapshotChunk{Header: h, Origin: 0xfeed, SnapshotSeq: 7, Index: 1, Count: 2, TotalBytes: 10, Data: []byte("hello")},
		RestoreComplete{Header: h, RestoredInputSeq: 41},
		ReplayBatch{Header: h, Events: []Event{{Seq: 42, Sender: 9, SenderSeq: 3, Payload: []byte("x")}, {Seq: 43, Sender: 9, SenderSeq: 4, Payload: []byte{}}}},
		ReplayAck{Header: h, UpTo: 43},
		Cutover{Header: h},
		Activate{Header: h, FinalSeq: 43},
		ActivateAck{Header: h, AppliedSeq: 43},
		Abort{Header: h, Phase: PhaseReplay, Reason: ReasonNotReadyTimeout, Attempts: 6, Text: "budget spent"},
		Complete{Header: h},
		NotReady{Header: h},
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	seen := map[Kind]bool{}
	for _, m := range samples() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("encode %s: %v", m.Kind(), err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", m.Kind(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s round trip:\n got %#v\nwant %#v", m.Kind(), got, m)
		}
		seen[m.Kind()] = true
	}
	for k := KindStart; k <= KindNotReady; k++ {
		if !seen[k] {
			t.Errorf("no sample for %s", k)
		}
	}
}

func TestEveryKindHasAPhaseOrIsAbort(t *testing.T) {
	for k := KindStart; k <= KindNotReady; k++ {
		if PhaseOf(k) == 0 && k != KindAbort {
			t.Errorf("%s has no phase", k)
		}
	}
}

// frame builds a raw frame by hand so tests can produce what Encode refuses.
func frame(t *testing.T, fields ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := e.EncodeArrayLen(len(fields)); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if err := e.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(ReplayAck{Header: Header{ID: 1, Attempt: 1}, UpTo: 5})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":                  nil,
		"trailing byte":          append(append([]byte{}, good...), 0),
		"truncated":              good[:len(good)-1],
		"bad version":            frame(t, 2, uint8(KindReplayAck), 1, 1, 5),
		"unknown kind":           frame(t, 1, 99, 1, 1, 5),
		"kind zero":              frame(t, 1, 0, 1, 1),
		"too few fields":         frame(t, 1, uint8(KindReplayAck), 1, 1),
		"too many fields":        frame(t, 1, uint8(KindReplayAck), 1, 1, 5, 6),
		"negative int":           frame(t, 1, uint8(KindReplayAck), 1, 1, -1),
		"nil int":                frame(t, 1, uint8(KindReplayAck), 1, 1, nil),
		"string for int":         frame(t, 1, uint8(KindReplayAck), 1, 1, "5"),
		"attempt zero":           frame(t, 1, uint8(KindReplayAck), 1, 0, 5),
		"attempt > u32":          frame(t, 1, uint8(KindReplayAck), 1, uint64(1)<<33, 5),
		"bad digest":             frame(t, 1, uint8(KindNeedModule), 1, 1, "sha256:XYZ"),
		"upper hex":              frame(t, 1, uint8(KindNeedModule), 1, 1, "sha256:"+strings.Repeat("AB", 32)),
		"bytes for str":          frame(t, 1, uint8(KindNeedModule), 1, 1, []byte(testDigest)),
		"chunk idx>=cnt":         frame(t, 1, uint8(KindSnapshotChunk), 1, 1, 1, 1, 2, 2, 10, []byte("x")),
		"chunk count 0":          frame(t, 1, uint8(KindSnapshotChunk), 1, 1, 1, 1, 0, 0, 10, []byte("x")),
		"chunk > total":          frame(t, 1, uint8(KindSnapshotChunk), 1, 1, 1, 1, 0, 1, 1, []byte("xy")),
		"more chunks than bytes": frame(t, 1, uint8(KindSnapshotChunk), 1, 1, 1, 1, 0, 5, 2, []byte("x")),
		"chunk data nil":         frame(t, 1, uint8(KindSnapshotChunk), 1, 1, 1, 1, 0, 1, 0, nil),
		"empty batch":            frame(t, 1, uint8(KindReplayBatch), 1, 1, []any{}),
		"gap in batch":           frame(t, 1, uint8(KindReplayBatch), 1, 1, []any{[]any{1, 0, 0, []byte{}}, []any{3, 0, 0, []byte{}}}),
		"event seq 0":            frame(t, 1, uint8(KindReplayBatch), 1, 1, []any{[]any{0, 0, 0, []byte{}}}),
		"event 3 fields":         frame(t, 1, uint8(KindReplayBatch), 1, 1, []any{[]any{1, 0, 0}}),
		"abort bad phase":        frame(t, 1, uint8(KindAbort), 1, 1, 9, 1, 0, ""),
		"abort bad reason":       frame(t, 1, uint8(KindAbort), 1, 1, 1, 0, 0, ""),
		"not an array":           {0x05},
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestDecodeEnforcesLimits(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxChunkData = 4
	big := SnapshotChunk{Header: Header{ID: 1, Attempt: 1}, Origin: 1, SnapshotSeq: 1, Index: 0, Count: 1, TotalBytes: 5, Data: []byte("12345")}
	b, err := Encode(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeWithLimits(b, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunk over limit: got %v, want ErrTooLarge", err)
	}
	if _, err := EncodeWithLimits(big, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("encode over limit: got %v, want ErrTooLarge", err)
	}
	lim = DefaultLimits()
	lim.MaxFrame = 8
	if _, err := DecodeWithLimits(b, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("frame over limit: got %v", err)
	}
	// A length prefix claiming 4 GiB must be refused without allocating it.
	huge := frame(t, 1, uint8(KindNeedModule), 1, 1)
	huge[0]++ // one more field
	huge = append(huge, 0xdb, 0xff, 0xff, 0xff, 0xff)
	if _, err := Decode(huge); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge string length: got %v", err)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	bad := []Message{
		Start{Header: Header{ID: 1, Attempt: 0}, Plan: testPlan()},
		Start{Header: Header{ID: 1, Attempt: 1}, Plan: Plan{KindDigest: testDigest, Source: "a", Target: "a", Orchestrator: "a"}},
		Start{Header: Header{ID: 1, Attempt: 1}, Plan: Plan{KindDigest: "md5:00", Source: "a", Target: "b", Orchestrator: "a"}},
		Prepare{Header: Header{ID: 1, Attempt: 1}, Plan: testPlan(), TotalBytes: 1, ChunkCount: 1}, // TI without envelope
		nil,
	}
	for i, m := range bad {
		if _, err := Encode(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: got %v, want ErrMalformed", i, err)
		}
	}
}

func TestEmptySnapshotIsOneEmptyChunk(t *testing.T) {
	m := SnapshotChunk{Header: Header{ID: 1, Attempt: 1}, Origin: 1, SnapshotSeq: 1, Count: 1, TotalBytes: 0, Data: nil}
	b, err := Encode(m)
	if err != nil {
		t.Fatalf("stateless snapshot chunk: %v", err)
	}
	got, err := Decode(b)
	if err != nil || len(got.(SnapshotChunk).Data) != 0 {
		t.Fatalf("decode: %v %#v", err, got)
	}
}
