package wire

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the frame format version.
const Version = 1

// headerFields: version, kind, id, attempt.
const headerFields = 4

// fieldCount is the number of body fields per kind, -1 for an unknown kind;
// the decoder requires it exactly.
func fieldCount(k Kind) int {
	switch k {
	case KindCutover, KindComplete, KindNotReady:
		return 0
	case KindNeedModule, KindModuleDigest, KindRestoreComplete, KindReplayBatch,
		KindReplayAck, KindActivate, KindActivateAck:
		return 1
	case KindAbort:
		return 4
	case KindSnapshotChunk:
		return 6
	case KindStart:
		return planFields
	case KindPrepare:
		return planFields + 5
	}
	return -1
}

const planFields = 6

// eventFields: seq, sender, sender seq, payload, once.
const eventFields = 5

// Encode validates m against DefaultLimits and encodes it.
func Encode(m Message) ([]byte, error) { return EncodeWithLimits(m, DefaultLimits()) }

// EncodeWithLimits validates m against lim and encodes it.
func EncodeWithLimits(m Message, lim Limits) ([]byte, error) {
	if m == nil {
		return nil, malformed("nil message")
	}
	if err := Validate(m, lim); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := writer{e: msgpack.NewEncoder(&buf)}
	k := m.Kind()
	h := m.Hdr()
	w.arrayLen(headerFields + fieldCount(k))
	w.uint(Version)
	w.uint(uint64(k))
	w.uint(h.ID)
	w.uint(uint64(h.Attempt))
	switch m := m.(type) {
	case Start:
		w.plan(m.Plan)
	case Prepare:
		w.plan(m.Plan)
		w.uint(m.SnapshotSeq)
		w.uint(m.InputSeq)
		w.uint(m.TotalBytes)
		w.uint(uint64(m.ChunkCount))
		w.bytes(m.Envelope)
	case NeedModule:
		w.str(m.Digest)
	case ModuleDigest:
		w.str(m.Digest)
	case SnapshotChunk:
		w.uint(m.Origin)
		w.uint(m.SnapshotSeq)
		w.uint(uint64(m.Index))
		w.uint(uint64(m.Count))
		w.uint(m.TotalBytes)
		w.bytes(m.Data)
	case RestoreComplete:
		w.uint(m.RestoredInputSeq)
	case ReplayBatch:
		w.arrayLen(len(m.Events))
		for _, ev := range m.Events {
			w.arrayLen(eventFields)
			w.uint(ev.Seq)
			w.uint(ev.Sender)
			w.uint(ev.SenderSeq)
			w.bytes(ev.Payload)
			w.bool(ev.Once)
		}
	case ReplayAck:
		w.uint(m.UpTo)
	case Activate:
		w.uint(m.FinalSeq)
	case ActivateAck:
		w.uint(m.AppliedSeq)
	case Abort:
		w.uint(uint64(m.Phase))
		w.uint(uint64(m.Reason))
		w.uint(uint64(m.Attempts))
		w.str(m.Text)
	case Cutover, Complete, NotReady:
	}
	if w.err != nil {
		return nil, fmt.Errorf("migration wire: encode %s: %w", k, w.err)
	}
	if buf.Len() > lim.MaxFrame {
		return nil, tooLarge("frame", buf.Len(), lim.MaxFrame)
	}
	return buf.Bytes(), nil
}

// writer keeps the first error so the per-kind code above stays linear.
type writer struct {
	e   *msgpack.Encoder
	err error
}

func (w *writer) do(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) arrayLen(n int) { w.do(w.e.EncodeArrayLen(n)) }
func (w *writer) uint(v uint64)  { w.do(w.e.EncodeUint(v)) }
func (w *writer) str(s string)   { w.do(w.e.EncodeString(s)) }
func (w *writer) bool(b bool)    { w.do(w.e.EncodeBool(b)) }

// bytes never writes nil: the decoder refuses nil for a byte field.
func (w *writer) bytes(b []byte) {
	if b == nil {
		b = []byte{}
	}
	w.do(w.e.EncodeBytes(b))
}

func (w *writer) plan(p Plan) {
	w.uint(p.Origin)
	w.str(p.KindDigest)
	w.str(string(p.Source))
	w.str(string(p.Target))
	w.str(string(p.Orchestrator))
	w.bool(p.TransportIdentity)
}
