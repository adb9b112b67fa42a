package meshquic

import (
	"encoding/binary"
	"fmt"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Pipelined delivery frames travel as ordinary data frames (length prefix,
// kindData) whose body is a hand-written binary batch rather than msgpack:
// the hot path must not pay for reflection or per-field allocation.
//
//	body  = version(1) | type(1) | count(uint32 BE) | count items
//	event = id(uvarint) | flags(1) | target(uint64 BE) | sender(uvarint) |
//	        seq(uvarint) | len(uvarint) | payload
//	result = id(uvarint) | status(1) | status body
//	  ok:    nouts(uvarint) | nouts × (link(56) | len(uvarint) | payload)
//	  bare:  nouts(uvarint) | nouts × (len(uvarint) | payload)
//	         (ok without links, for an event flagged noLinks)
//	  dup:   nothing
//	  error: len(uvarint) | code | len(uvarint) | message
//	  moved: origin(uint64 BE) | node(16) | epoch(uvarint)
//
// Every uvarint must be minimal, every length must fit in what follows,
// unknown flags, statuses and trailing bytes are refused: two encodings of
// one batch would let a peer smuggle data past a check on the other.
const (
	pipeVersion     byte = 1
	pipeTypeEvents  byte = 1
	pipeTypeResults byte = 2

	pipeBatchHeader = 1 + 1 + 4
	// pipeMaxItems bounds one batch's count before anything is allocated.
	pipeMaxItems = 1 << 16

	flagOnce  byte = 1 << 0
	flagFresh byte = 1 << 1 // the sender had nothing in flight for the target
	// flagNoLinks: the sender does not want the outputs' links, which are
	// as large as small outputs; the answer is a bare ok.
	flagNoLinks byte = 1 << 2
	flagsKnown       = flagOnce | flagFresh | flagNoLinks

	statusOK    byte = 0
	statusDup   byte = 1
	statusError byte = 2
	statusMoved byte = 3
	statusBare  byte = 4

	maxWireCode    = 64
	maxWireMessage = 4 << 10
	// errItemMax bounds appendErrItem's output.
	errItemMax = 3*binary.MaxVarintLen64 + 1 + maxWireCode + maxWireMessage
)

// pipeEvent is one decoded event; Payload aliases the frame.
type pipeEvent struct {
	id    uint64
	flags byte
	ev    Event
}

// pipeResult is one decoded result; byte fields alias the frame, and
// outputs are outs[outStart:outStart+outN] of the batch's output slice.
type pipeResult struct {
	id             uint64
	status         byte
	outStart, outN int
	code, msg      []byte
	moved          MovedError
}

// pipeOut is one decoded output; both fields alias the frame.
type pipeOut struct {
	link, payload []byte
}

// frameBuf accumulates items into batch frames cut at a size.
type frameBuf struct {
	b     []byte
	start int // offset of the open frame, -1 if none
	count uint32
	typ   byte
	cut   int
}

func newFrameBuf(typ byte, cut int) frameBuf {
	return frameBuf{start: -1, typ: typ, cut: cut}
}

// item returns the buffer to append one item of at most size bytes to,
// opening a frame if needed. An item that would take the open frame past
// the cut starts a new one, so a frame exceeds the cut only by holding a
// single large item (which the caller checked against MaxFrame).
func (f *frameBuf) item(size int) []byte {
	if f.start >= 0 && f.count > 0 && (len(f.b)-f.start+size > f.cut || f.count == pipeMaxItems) {
		f.close()
	}
	if f.start < 0 {
		f.start = len(f.b)
		f.b = append(f.b, 0, 0, 0, 0, kindData, pipeVersion, f.typ, 0, 0, 0, 0)
		f.count = 0
	}
	f.count++
	return f.b
}

// close patches the open frame's length and count.
func (f *frameBuf) close() {
	if f.start < 0 {
		return
	}
	binary.BigEndian.PutUint32(f.b[f.start:], uint32(len(f.b)-f.start-frameHeaderSize))
	binary.BigEndian.PutUint32(f.b[f.start+frameHeaderSize+3:], f.count)
	f.start = -1
}

// take closes the open frame and returns the frames, leaving spare (emptied)
// as the buffer to fill next.
func (f *frameBuf) take(spare []byte) []byte {
	f.close()
	b := f.b
	f.b = spare[:0]
	return b
}

func (f *frameBuf) reset() {
	f.b = f.b[:0]
	f.start = -1
}

func appendEventItem(b []byte, id uint64, flags byte, ev *Event) []byte {
	b = binary.AppendUvarint(b, id)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, ev.Target)
	b = binary.AppendUvarint(b, ev.Sender)
	b = binary.AppendUvarint(b, ev.Seq)
	b = binary.AppendUvarint(b, uint64(len(ev.Payload)))
	return append(b, ev.Payload...)
}

// eventItemSize bounds appendEventItem's output.
func eventItemSize(ev *Event) int {
	return 4*binary.MaxVarintLen64 + 1 + 8 + len(ev.Payload)
}

// appendOKItem encodes a successful result, bare (without links) when
// noLinks; a link of the wrong size is the encoder's caller's bug and is
// refused before anything is appended.
func appendOKItem(b []byte, id uint64, resp *DeliverResponse, noLinks bool) ([]byte, error) {
	if noLinks && !resp.Duplicate {
		b = binary.AppendUvarint(b, id)
		b = append(b, statusBare)
		b = binary.AppendUvarint(b, uint64(len(resp.Outputs)))
		for i := range resp.Outputs {
			b = binary.AppendUvarint(b, uint64(len(resp.Outputs[i].Payload)))
			b = append(b, resp.Outputs[i].Payload...)
		}
		return b, nil
	}
	for i := range resp.Outputs {
		if n := len(resp.Outputs[i].Link); n != chain.LinkSize {
			return b, fmt.Errorf("%w: output %d link is %d bytes, want %d", ErrMalformed, i, n, chain.LinkSize)
		}
	}
	b = binary.AppendUvarint(b, id)
	if resp.Duplicate {
		return append(b, statusDup), nil
	}
	b = append(b, statusOK)
	b = binary.AppendUvarint(b, uint64(len(resp.Outputs)))
	for i := range resp.Outputs {
		b = append(b, resp.Outputs[i].Link...)
		b = binary.AppendUvarint(b, uint64(len(resp.Outputs[i].Payload)))
		b = append(b, resp.Outputs[i].Payload...)
	}
	return b, nil
}

func appendErrItem(b []byte, id uint64, err error) []byte {
	b = binary.AppendUvarint(b, id)
	w := toWire(err)
	if w.Code == CodeMoved && len(w.To) == nodekey.NodeIDSize {
		b = append(b, statusMoved)
		b = binary.BigEndian.AppendUint64(b, w.Origin)
		b = append(b, w.To...)
		return binary.AppendUvarint(b, w.Epoch)
	}
	code, msg := w.Code, w.Message
	if len(code) > maxWireCode {
		code = CodeInternal
	}
	if len(msg) > maxWireMessage {
		msg = msg[:maxWireMessage]
	}
	b = append(b, statusError)
	b = binary.AppendUvarint(b, uint64(len(code)))
	b = append(b, code...)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

// pipeReader walks one batch body strictly.
type pipeReader struct {
	b   []byte
	p   int
	err error
}

func (r *pipeReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: pipeline batch: %s at byte %d", ErrMalformed, what, r.p)
	}
}

func (r *pipeReader) byte1() byte {
	if r.err != nil || r.p >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

func (r *pipeReader) u64() uint64 {
	if r.err != nil || len(r.b)-r.p < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.p:])
	r.p += 8
	return v
}

func (r *pipeReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.p:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	// Only the shortest encoding is valid: 0x80 0x00 is not another zero.
	if n > 1 && r.b[r.p+n-1] == 0 {
		r.fail("non-minimal varint")
		return 0
	}
	r.p += n
	return v
}

func (r *pipeReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.p) {
		r.fail(fmt.Sprintf("length %d beyond the %d bytes left", n, len(r.b)-r.p))
		return nil
	}
	s := r.b[r.p : r.p+int(n) : r.p+int(n)]
	r.p += int(n)
	return s
}

// header checks the batch header and returns the item count.
func (r *pipeReader) header(typ byte) int {
	if len(r.b) < pipeBatchHeader {
		r.fail("short header")
		return 0
	}
	if v := r.b[0]; v != pipeVersion {
		r.fail(fmt.Sprintf("version %d, want %d", v, pipeVersion))
		return 0
	}
	if t := r.b[1]; t != typ {
		r.fail(fmt.Sprintf("batch type %d, want %d", t, typ))
		return 0
	}
	n := binary.BigEndian.Uint32(r.b[2:])
	r.p = pipeBatchHeader
	// Every item takes at least two bytes: refuse a count the body cannot
	// hold before sizing anything by it.
	if n == 0 || n > pipeMaxItems || uint64(n)*2 > uint64(len(r.b)-r.p) {
		r.fail(fmt.Sprintf("item count %d", n))
		return 0
	}
	return int(n)
}

func (r *pipeReader) end() error {
	if r.err == nil && r.p != len(r.b) {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)-r.p))
	}
	return r.err
}

// decodeEventBatch appends the events of body (a data frame's body) to dst.
func decodeEventBatch(body []byte, dst []pipeEvent) ([]pipeEvent, error) {
	r := pipeReader{b: body}
	n := r.header(pipeTypeEvents)
	for i := 0; i < n && r.err == nil; i++ {
		var e pipeEvent
		e.id = r.uvarint()
		e.flags = r.byte1()
		if e.flags&^flagsKnown != 0 {
			r.fail(fmt.Sprintf("unknown flags 0x%02x", e.flags))
		}
		e.ev.Target = r.u64()
		e.ev.Sender = r.uvarint()
		e.ev.Seq = r.uvarint()
		e.ev.Payload = r.bytes(r.uvarint())
		e.ev.Once = e.flags&flagOnce != 0
		dst = append(dst, e)
	}
	if err := r.end(); err != nil {
		return dst[:0], err
	}
	return dst, nil
}

// decodeResultBatch appends the results of body to dst and their outputs
// to outs.
func decodeResultBatch(body []byte, dst []pipeResult, outs []pipeOut) ([]pipeResult, []pipeOut, error) {
	r := pipeReader{b: body}
	n := r.header(pipeTypeResults)
	for i := 0; i < n && r.err == nil; i++ {
		var res pipeResult
		res.id = r.uvarint()
		res.status = r.byte1()
		switch res.status {
		case statusOK:
			k := r.uvarint()
			// Each output takes at least a link and a length byte.
			if k > uint64(len(r.b)-r.p)/(chain.LinkSize+1) {
				r.fail(fmt.Sprintf("output count %d", k))
				break
			}
			res.outStart, res.outN = len(outs), int(k)
			for j := 0; j < int(k) && r.err == nil; j++ {
				var o pipeOut
				o.link = r.bytes(chain.LinkSize)
				o.payload = r.bytes(r.uvarint())
				outs = append(outs, o)
			}
		case statusBare:
			k := r.uvarint()
			// Each output takes at least a length byte.
			if k > uint64(len(r.b)-r.p) {
				r.fail(fmt.Sprintf("output count %d", k))
				break
			}
			res.outStart, res.outN = len(outs), int(k)
			for j := 0; j < int(k) && r.err == nil; j++ {
				outs = append(outs, pipeOut{payload: r.bytes(r.uvarint())})
			}
		case statusDup:
		case statusError:
			if k := r.uvarint(); k > maxWireCode {
				r.fail("error code too long")
			} else {
				res.code = r.bytes(k)
			}
			if k := r.uvarint(); k > maxWireMessage {
				r.fail("error message too long")
			} else {
				res.msg = r.bytes(k)
			}
		case statusMoved:
			res.moved.Origin = r.u64()
			copy(res.moved.To[:], r.bytes(nodekey.NodeIDSize))
			res.moved.Epoch = r.uvarint()
		default:
			r.fail(fmt.Sprintf("unknown status %d", res.status))
		}
		dst = append(dst, res)
	}
	if err := r.end(); err != nil {
		return dst[:0], outs[:0], err
	}
	return dst, outs, nil
}
