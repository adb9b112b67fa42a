package wire

import (
	"bytes"
	"math"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Decode decodes one frame with DefaultLimits.
func Decode(b []byte) (Message, error) { return DecodeWithLimits(b, DefaultLimits()) }

// DecodeWithLimits decodes one frame, strictly: see the package comment.
func DecodeWithLimits(b []byte, lim Limits) (Message, error) {
	if len(b) > lim.MaxFrame {
		return nil, tooLarge("frame", len(b), lim.MaxFrame)
	}
	r := newReader(b, lim)
	n := r.arrayLen(math.MaxInt)
	if v := r.uint(math.MaxUint8); r.err == nil && v != Version {
		return nil, malformed("version %d", v)
	}
	k := Kind(r.uint(math.MaxUint8))
	if r.err != nil {
		return nil, r.err
	}
	want := fieldCount(k)
	if want < 0 {
		return nil, malformed("unknown kind %d", k)
	}
	if n != headerFields+want {
		return nil, malformed("%s has %d fields, want %d", k, n, headerFields+want)
	}
	h := Header{ID: r.uint(math.MaxUint64), Attempt: uint32(r.uint(math.MaxUint32))}
	m := decodeBody(k, h, r)
	if r.err != nil {
		return nil, r.err
	}
	if r.src.Len() != 0 {
		return nil, malformed("%d trailing bytes", r.src.Len())
	}
	if err := Validate(m, lim); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeBody reads the fields of kind k; errors accumulate in r.
func decodeBody(k Kind, h Header, r *reader) Message {
	switch k {
	case KindStart:
		return Start{Header: h, Plan: r.plan()}
	case KindPrepare:
		return Prepare{
			Header:      h,
			Plan:        r.plan(),
			SnapshotSeq: r.uint(math.MaxUint64),
			InputSeq:    r.uint(math.MaxUint64),
			TotalBytes:  r.uint(math.MaxUint64),
			ChunkCount:  uint32(r.uint(math.MaxUint32)),
			Envelope:    r.bytes(r.lim.MaxEnvelope),
		}
	case KindNeedModule:
		return NeedModule{Header: h, Digest: r.str(len(digestPrefix) + 64)}
	case KindModuleDigest:
		return ModuleDigest{Header: h, Digest: r.str(len(digestPrefix) + 64)}
	case KindSnapshotChunk:
		return SnapshotChunk{
			Header:      h,
			Origin:      r.uint(math.MaxUint64),
			SnapshotSeq: r.uint(math.MaxUint64),
			Index:       uint32(r.uint(math.MaxUint32)),
			Count:       uint32(r.uint(math.MaxUint32)),
			TotalBytes:  r.uint(math.MaxUint64),
			Data:        r.bytes(r.lim.MaxChunkData),
		}
	case KindRestoreComplete:
		return RestoreComplete{Header: h, RestoredInputSeq: r.uint(math.MaxUint64)}
	case KindReplayBatch:
		n := r.arrayLen(r.lim.MaxEvents)
		evs := make([]Event, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			if r.arrayLen(eventFields) != eventFields && r.err == nil {
				r.fail(malformed("event with wrong field count"))
			}
			evs = append(evs, Event{
				Seq:       r.uint(math.MaxUint64),
				Sender:    r.uint(math.MaxUint64),
				SenderSeq: r.uint(math.MaxUint64),
				Payload:   r.bytes(r.lim.MaxEventPayload),
				Once:      r.bool(),
			})
		}
		return ReplayBatch{Header: h, Events: evs}
	case KindReplayAck:
		return ReplayAck{Header: h, UpTo: r.uint(math.MaxUint64)}
	case KindCutover:
		return Cutover{Header: h}
	case KindActivate:
		return Activate{Header: h, FinalSeq: r.uint(math.MaxUint64)}
	case KindActivateAck:
		return ActivateAck{Header: h, AppliedSeq: r.uint(math.MaxUint64)}
	case KindAbort:
		return Abort{
			Header:   h,
			Phase:    Phase(r.uint(math.MaxUint8)),
			Reason:   Reason(r.uint(math.MaxUint8)),
			Attempts: uint32(r.uint(math.MaxUint32)),
			Text:     r.str(r.lim.MaxText),
		}
	case KindComplete:
		return Complete{Header: h}
	case KindNotReady:
		return NotReady{Header: h}
	}
	r.fail(malformed("unknown kind %d", k))
	return nil
}

// reader wraps the msgpack decoder with type-exact, bounded reads. The first
// error sticks and later reads return zero values, so decodeBody can read a
// whole message without checking after every field.
type reader struct {
	src *bytes.Reader
	d   *msgpack.Decoder
	lim Limits
	err error
}

func newReader(b []byte, lim Limits) *reader {
	src := bytes.NewReader(b)
	return &reader{src: src, d: msgpack.NewDecoder(src), lim: lim}
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) code() (byte, bool) {
	if r.err != nil {
		return 0, false
	}
	c, err := r.d.PeekCode()
	if err != nil {
		r.fail(malformed("truncated"))
		return 0, false
	}
	return c, true
}

// uint accepts only unsigned encodings (positive fixint, uint8..uint64): the
// library would otherwise read nil as 0 and -1 as 2^64-1.
func (r *reader) uint(max uint64) uint64 {
	c, ok := r.code()
	if !ok {
		return 0
	}
	if c > msgpcode.PosFixedNumHigh && c != msgpcode.Uint8 && c != msgpcode.Uint16 &&
		c != msgpcode.Uint32 && c != msgpcode.Uint64 {
		r.fail(malformed("want unsigned integer, got code %#x", c))
		return 0
	}
	v, err := r.d.DecodeUint64()
	if err != nil {
		r.fail(malformed("integer: %v", err))
		return 0
	}
	if v > max {
		r.fail(malformed("integer %d over %d", v, max))
		return 0
	}
	return v
}

func (r *reader) bool() bool {
	c, ok := r.code()
	if !ok {
		return false
	}
	if c != msgpcode.True && c != msgpcode.False {
		r.fail(malformed("want bool, got code %#x", c))
		return false
	}
	_, _ = r.d.DecodeBool() // the code was checked above; this only advances
	return c == msgpcode.True
}

func (r *reader) arrayLen(max int) int {
	c, ok := r.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		r.fail(malformed("want array, got code %#x", c))
		return 0
	}
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		r.fail(malformed("array: %v", err))
		return 0
	}
	if n > max || n > r.src.Len() {
		// Every element takes at least one byte, so a length beyond what
		// is left is a lie; refuse before allocating for it.
		r.fail(tooLarge("array", n, min(max, r.src.Len())))
		return 0
	}
	return n
}

// raw reads a bin (wantStr=false) or str (wantStr=true) of at most max bytes,
// checking the length before allocating.
func (r *reader) raw(max int, wantStr bool) []byte {
	c, ok := r.code()
	if !ok {
		return nil
	}
	isStr := msgpcode.IsString(c)
	isBin := c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32
	if (wantStr && !isStr) || (!wantStr && !isBin) {
		r.fail(malformed("want %s, got code %#x", map[bool]string{true: "string", false: "bytes"}[wantStr], c))
		return nil
	}
	n, err := r.d.DecodeBytesLen()
	if err != nil {
		r.fail(malformed("length: %v", err))
		return nil
	}
	if n > max {
		r.fail(tooLarge("field", n, max))
		return nil
	}
	if n > r.src.Len() {
		r.fail(malformed("truncated: field of %d bytes, %d left", n, r.src.Len()))
		return nil
	}
	buf := make([]byte, n)
	if err := r.d.ReadFull(buf); err != nil {
		r.fail(malformed("truncated"))
		return nil
	}
	return buf
}

func (r *reader) bytes(max int) []byte { return r.raw(max, false) }

func (r *reader) str(max int) string {
	b := r.raw(max, true)
	if r.err == nil && !utf8.Valid(b) {
		r.fail(malformed("string is not UTF-8"))
	}
	return string(b)
}

func (r *reader) plan() Plan {
	return Plan{
		Origin:            r.uint(math.MaxUint64),
		KindDigest:        r.str(len(digestPrefix) + 64),
		Source:            NodeID(r.str(r.lim.MaxNodeID)),
		Target:            NodeID(r.str(r.lim.MaxNodeID)),
		Orchestrator:      NodeID(r.str(r.lim.MaxNodeID)),
		TransportIdentity: r.bool(),
	}
}
