package channel

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The wire format of the messages nodes exchange about channels. Every
// message is
//
//	version (1 byte, WireVersion) | kind (1 byte) | body
//
// and bodies are fixed-order fields: integers as 8-byte big-endian, node ids
// as 16 bytes, keys and entity ids as 32 bytes, booleans as one byte 0 or 1,
// the channel name as a 1-byte length and the name, tokens and payloads as a
// 4-byte big-endian length and the bytes. There is one encoding of each
// message: the decoder refuses unknown versions and kinds, other boolean
// bytes, invalid names, over-long fields and trailing bytes, so a peer cannot
// smuggle meaning past it, and Encode(Decode(b)) == b for every accepted b.
// Correlating an answer with its request is the transport's job.

// WireVersion is the version byte this package writes and reads.
const WireVersion = 1

// Bounds of decoded fields.
const (
	MaxTokenLen   = 8 << 10
	MaxPayloadLen = 1 << 20
	MaxDetailLen  = 1 << 10
	// A handoff carries a whole channel; these bound what one may claim.
	MaxHandoffSubscribers = 1 << 16
	MaxHandoffPublishers  = 1 << 20
	MaxHandoffQueue       = 1 << 16
)

// ErrBadMessage reports bytes that are not a valid message; test with
// errors.Is.
var ErrBadMessage = errors.New("channel: bad wire message")

// ErrNotHome answers a request sent to a node that is not (or no longer) the
// channel's home; the sender recomputes Home and tries again there.
var ErrNotHome = errors.New("channel: not this channel's home")

// ErrRetry answers a request the home could not confirm yet; see CodeRetry.
var ErrRetry = errors.New("channel: not confirmed yet, retry")

// Kind tags a message.
type Kind uint8

// Kinds.
const (
	KindCreate Kind = iota + 1
	KindSubscribe
	KindUnsubscribe
	KindMove
	KindPublish
	KindDeliver
	KindAck
	KindNack
	KindAnswer
	KindHandoff
)

// Message is one of the *Msg types below.
type Message interface {
	Kind() Kind
}

// CreateMsg asks the home to create a channel.
type CreateMsg struct{ Def Definition }

// SubscribeMsg asks the home to subscribe a daemon.
type SubscribeMsg struct {
	Channel string
	Sub     Subscription
}

// UnsubscribeMsg asks the home to drop a subscription; From is the node
// asking (see Machine.Unsubscribe).
type UnsubscribeMsg struct {
	Channel string
	Origin  uint64
	From    NodeID
}

// MoveMsg tells the home a subscriber now lives on Node.
type MoveMsg struct {
	Channel string
	Origin  uint64
	Node    NodeID
}

// PublishMsg offers a message to the home.
type PublishMsg struct {
	Channel string
	Pub     Publication
}

// DeliverMsg carries a delivery from the home to the subscriber's node.
type DeliverMsg struct{ D Deliver }

// AckMsg acknowledges (cumulatively) a delivery; NackMsg reports it failed.
type AckMsg struct {
	Channel string
	Ack     Ack
}

// NackMsg reports that a delivery did not reach its subscriber.
type NackMsg AckMsg

// Code is an answer's result, one per sentinel error.
type Code uint8

// Codes.
const (
	CodeOK Code = iota
	CodeBadName
	CodeNotFound
	CodeExists
	CodeFull
	CodeNotPermitted
	CodeNotSubscribed
	CodeOutOfOrder
	CodeTooLarge
	CodeLimit
	CodeBadDef
	CodeNotHome
	CodeBadMessage
	CodeOther
	// CodeRetry: the home ran the request but could not make it safe yet
	// (its replica did not confirm); send it again (a publish is then
	// answered Duplicate once it is safe).
	CodeRetry
	codeEnd
)

// codeErr is the sentinel a code stands for; nil for CodeOK and CodeOther.
func codeErr(c Code) error {
	switch c {
	case CodeBadName:
		return ErrBadName
	case CodeNotFound:
		return ErrChannelNotFound
	case CodeExists:
		return ErrChannelExists
	case CodeFull:
		return ErrChannelFull
	case CodeNotPermitted:
		return ErrNotPermitted
	case CodeNotSubscribed:
		return ErrNotSubscribed
	case CodeOutOfOrder:
		return ErrOutOfOrder
	case CodeTooLarge:
		return ErrTooLarge
	case CodeLimit:
		return ErrLimit
	case CodeBadDef:
		return ErrBadDef
	case CodeNotHome:
		return ErrNotHome
	case CodeBadMessage:
		return ErrBadMessage
	case CodeRetry:
		return ErrRetry
	}
	return nil
}

// errOther stands for an error the remote side had no code for.
var errOther = errors.New("channel: remote error")

// AnswerMsg answers Create, Subscribe, Unsubscribe, Move and Publish.
type AnswerMsg struct {
	Code Code
	// Outcome and Seq are a publish's result; for a subscribe, Seq is the
	// subscription id (zero otherwise).
	Outcome Outcome
	Seq     uint64
	// Detail is the error text, for people; never parsed.
	Detail string
}

// AnswerFor builds the answer to a request that returned res and err.
func AnswerFor(res PublishResult, err error) AnswerMsg {
	if err == nil {
		return AnswerMsg{Code: CodeOK, Outcome: res.Outcome, Seq: res.Seq}
	}
	a := AnswerMsg{Code: CodeOther, Detail: err.Error()}
	for c := CodeOK + 1; c < codeEnd; c++ {
		if e := codeErr(c); e != nil && errors.Is(err, e) {
			a.Code = c
			break
		}
	}
	if len(a.Detail) > MaxDetailLen {
		a.Detail = a.Detail[:MaxDetailLen]
	}
	return a
}

// Err gives the answer's error back as the sentinel it was sent for, with
// the remote detail; nil for CodeOK.
func (a AnswerMsg) Err() error {
	if a.Code == CodeOK {
		return nil
	}
	e := codeErr(a.Code)
	if e == nil {
		e = errOther
	}
	return fmt.Errorf("%w (remote: %s)", e, a.Detail)
}

// Result gives a publish answer's result.
func (a AnswerMsg) Result() PublishResult { return PublishResult{Outcome: a.Outcome, Seq: a.Seq} }

// Kind implementations.
func (CreateMsg) Kind() Kind      { return KindCreate }
func (SubscribeMsg) Kind() Kind   { return KindSubscribe }
func (UnsubscribeMsg) Kind() Kind { return KindUnsubscribe }
func (MoveMsg) Kind() Kind        { return KindMove }
func (PublishMsg) Kind() Kind     { return KindPublish }
func (DeliverMsg) Kind() Kind     { return KindDeliver }
func (AckMsg) Kind() Kind         { return KindAck }
func (NackMsg) Kind() Kind        { return KindNack }
func (AnswerMsg) Kind() Kind      { return KindAnswer }
func (HandoffMsg) Kind() Kind     { return KindHandoff }

// HandoffMsg carries a channel's State from its old home to its new one.
// Subscribers are sorted by origin and publishers by id on the wire; the
// decoder insists, so the encoding stays unique.
type HandoffMsg struct{ State State }

type encoder struct {
	b   []byte
	err error
}

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) node(n NodeID) {
	e.b = append(e.b, n[:]...)
}
func (e *encoder) key(k [32]byte) { e.b = append(e.b, k[:]...) }
func (e *encoder) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) name(s string) {
	if err := ValidName(s); err != nil && e.err == nil {
		e.err = err
	}
	e.u8(uint8(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(what string, v []byte, max int) {
	if len(v) > max && e.err == nil {
		e.err = fmt.Errorf("%w: %s of %d bytes (max %d)", ErrTooLarge, what, len(v), max)
	}
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(v)))
	e.b = append(e.b, v...)
}

// Encode renders m. It refuses (rather than writes) what Decode would
// refuse: invalid names, over-long fields, unknown codes.
func Encode(m Message) ([]byte, error) {
	e := &encoder{b: []byte{WireVersion, byte(m.Kind())}}
	switch m := m.(type) {
	case CreateMsg:
		if err := m.Def.Validate(); err != nil {
			return nil, err
		}
		e.def(m.Def)
	case HandoffMsg:
		if err := e.handoff(m.State); err != nil {
			return nil, err
		}
	case SubscribeMsg:
		e.name(m.Channel)
		e.u64(m.Sub.Origin)
		e.key(m.Sub.Entity)
		e.node(m.Sub.Node)
		e.bytes("token", m.Sub.Token, MaxTokenLen)
	case UnsubscribeMsg:
		e.name(m.Channel)
		e.u64(m.Origin)
		e.node(m.From)
	case MoveMsg:
		e.name(m.Channel)
		e.u64(m.Origin)
		e.node(m.Node)
	case PublishMsg:
		e.name(m.Channel)
		e.u64(m.Pub.Publisher)
		e.u64(m.Pub.Seq)
		e.u64(m.Pub.Prev)
		e.key(m.Pub.Subject)
		e.bytes("token", m.Pub.Token, MaxTokenLen)
		e.bytes("payload", m.Pub.Payload, MaxPayloadLen)
	case DeliverMsg:
		if m.D.Prev >= m.D.Seq {
			return nil, fmt.Errorf("%w: deliver prev %d not below seq %d", ErrBadMessage, m.D.Prev, m.D.Seq)
		}
		e.name(m.D.Channel)
		e.u64(m.D.To)
		e.node(m.D.Node)
		e.u64(m.D.Stream)
		e.u64(m.D.Seq)
		e.u64(m.D.Prev)
		e.u64(m.D.Sub)
		e.bytes("payload", m.D.Payload, MaxPayloadLen)
	case AckMsg:
		e.ack(m)
	case NackMsg:
		e.ack(AckMsg(m))
	case AnswerMsg:
		if m.Code >= codeEnd || m.Outcome > Duplicate {
			return nil, fmt.Errorf("%w: answer code %d outcome %d", ErrBadMessage, m.Code, m.Outcome)
		}
		e.u8(uint8(m.Code))
		e.u8(uint8(m.Outcome))
		e.u64(m.Seq)
		if len(m.Detail) > MaxDetailLen {
			return nil, fmt.Errorf("%w: detail of %d bytes", ErrTooLarge, len(m.Detail))
		}
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(m.Detail)))
		e.b = append(e.b, m.Detail...)
	default:
		return nil, fmt.Errorf("%w: cannot encode %T", ErrBadMessage, m)
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

func (e *encoder) def(d Definition) {
	e.name(d.Name)
	e.boolean(d.Restricted)
	e.u8(uint8(len(d.Trusted)))
	for _, k := range d.Trusted {
		e.key(k)
	}
}

func (e *encoder) handoff(st State) error {
	if err := st.Def.Validate(); err != nil {
		return err
	}
	if len(st.Subscribers) > MaxHandoffSubscribers || len(st.Publishers) > MaxHandoffPublishers {
		return fmt.Errorf("%w: handoff of %d subscribers, %d publishers", ErrTooLarge, len(st.Subscribers), len(st.Publishers))
	}
	e.def(st.Def)
	e.u64(st.Epoch)
	e.u64(st.LastSub)
	e.u64(st.Published)
	e.u64(st.Delivered)
	e.u64(st.Duplicates)
	e.u64(st.Full)
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(st.Publishers)))
	for _, id := range sortedKeys(st.Publishers) {
		e.u64(id)
		e.u64(st.Publishers[id])
	}
	subs := slices.Clone(st.Subscribers)
	slices.SortFunc(subs, func(a, b SubscriberState) int { return cmp.Compare(a.Origin, b.Origin) })
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(subs)))
	for i, s := range subs {
		if i > 0 && s.Origin == subs[i-1].Origin {
			return fmt.Errorf("%w: handoff lists origin %d twice", ErrBadState, s.Origin)
		}
		if len(s.Queue) > MaxHandoffQueue {
			return fmt.Errorf("%w: handoff queue of %d", ErrTooLarge, len(s.Queue))
		}
		e.u64(s.Origin)
		e.u64(s.ID)
		e.key(s.Entity)
		e.node(s.Node)
		e.u64(s.LastStream)
		e.u64(s.LastSeq)
		e.u64(s.Delivered)
		e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(s.Queue)))
		for _, q := range s.Queue {
			e.u64(q.Stream)
			e.u64(q.Seq)
			e.u64(q.Prev)
			e.bytes("payload", q.Payload, MaxPayloadLen)
		}
	}
	return nil
}

func (e *encoder) ack(m AckMsg) {
	e.name(m.Channel)
	e.u64(m.Ack.Origin)
	e.u64(m.Ack.Sub)
	e.u64(m.Ack.Stream)
	e.u64(m.Ack.Seq)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
	}
	d.b = nil
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated %s: need %d bytes, have %d", what, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) uint8 {
	if v := d.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if v := d.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) node(what string) (n NodeID) {
	copy(n[:], d.take(len(n), what))
	return n
}

func (d *decoder) key(what string) (k [32]byte) {
	copy(k[:], d.take(32, what))
	return k
}

func (d *decoder) boolean(what string) bool {
	switch v := d.u8(what); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: boolean byte %#x", what, v)
		return false
	}
}

func (d *decoder) name() string {
	n := d.u8("name length")
	s := string(d.take(int(n), "name"))
	if d.err == nil {
		if err := ValidName(s); err != nil {
			d.fail("%v", err)
		}
	}
	return s
}

// bytes copies the field out so a message never aliases the caller's
// buffer; a zero length decodes as nil, the form Encode writes for both.
func (d *decoder) bytes(what string, max int) []byte {
	raw := d.take(4, what+" length")
	if raw == nil {
		return nil
	}
	n := binary.BigEndian.Uint32(raw)
	if uint64(n) > uint64(max) {
		d.fail("%s of %d bytes (max %d)", what, n, max)
		return nil
	}
	v := d.take(int(n), what)
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) def() Definition {
	var def Definition
	def.Name = d.name()
	def.Restricted = d.boolean("restricted")
	n := d.u8("trusted count")
	if n > MaxTrusted {
		d.fail("%d trusted keys (max %d)", n, MaxTrusted)
	}
	for i := 0; i < int(n) && d.err == nil; i++ {
		def.Trusted = append(def.Trusted, d.key("trusted key"))
	}
	if d.err == nil {
		if err := def.Validate(); err != nil {
			d.fail("%v", err)
		}
	}
	return def
}

// count reads a 4-byte element count and refuses one above max or one the
// remaining bytes cannot hold (each element takes at least min bytes), so a
// short message cannot make the decoder allocate for a huge claim.
func (d *decoder) count(what string, max, min int) int {
	raw := d.take(4, what+" count")
	if raw == nil {
		return 0
	}
	n := binary.BigEndian.Uint32(raw)
	if uint64(n) > uint64(max) || uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.fail("%s count %d (max %d, %d bytes left)", what, n, max, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) handoff() State {
	var st State
	st.Def = d.def()
	st.Epoch = d.u64("epoch")
	st.LastSub = d.u64("last sub")
	st.Published = d.u64("published")
	st.Delivered = d.u64("delivered")
	st.Duplicates = d.u64("duplicates")
	st.Full = d.u64("full")
	if n := d.count("publisher", MaxHandoffPublishers, 16); n > 0 {
		st.Publishers = make(map[uint64]uint64, n)
		var prev uint64
		for i := 0; i < n && d.err == nil; i++ {
			id, seq := d.u64("publisher"), d.u64("publisher seq")
			if i > 0 && id <= prev {
				d.fail("publisher %d after %d", id, prev)
			}
			st.Publishers[id], prev = seq, id
		}
	}
	const subMin = 8*5 + 32 + 16 + 4
	n := d.count("subscriber", MaxHandoffSubscribers, subMin)
	for i := 0; i < n && d.err == nil; i++ {
		var s SubscriberState
		s.Origin = d.u64("origin")
		if i > 0 && s.Origin <= st.Subscribers[i-1].Origin {
			d.fail("origin %d after %d", s.Origin, st.Subscribers[i-1].Origin)
		}
		s.ID = d.u64("sub id")
		s.Entity = d.key("entity")
		s.Node = d.node("node")
		s.LastStream = d.u64("last stream")
		s.LastSeq = d.u64("last seq")
		s.Delivered = d.u64("delivered")
		q := d.count("queue", MaxHandoffQueue, 8*3+4)
		for j := 0; j < q && d.err == nil; j++ {
			s.Queue = append(s.Queue, QueuedMessage{Stream: d.u64("stream"), Seq: d.u64("seq"), Prev: d.u64("prev"), Payload: d.bytes("payload", MaxPayloadLen)})
		}
		st.Subscribers = append(st.Subscribers, s)
	}
	return st
}

// Decode parses one message, strictly (see the format above).
func Decode(b []byte) (Message, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadMessage, len(b))
	}
	if b[0] != WireVersion {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrBadMessage, b[0], WireVersion)
	}
	d := &decoder{b: b[2:]}
	var m Message
	switch k := Kind(b[1]); k {
	case KindCreate:
		m = CreateMsg{Def: d.def()}
	case KindHandoff:
		m = HandoffMsg{State: d.handoff()}
	case KindSubscribe:
		var s SubscribeMsg
		s.Channel = d.name()
		s.Sub.Origin = d.u64("origin")
		s.Sub.Entity = d.key("entity")
		s.Sub.Node = d.node("node")
		s.Sub.Token = d.bytes("token", MaxTokenLen)
		m = s
	case KindUnsubscribe:
		var u UnsubscribeMsg
		u.Channel = d.name()
		u.Origin = d.u64("origin")
		u.From = d.node("from")
		m = u
	case KindMove:
		var v MoveMsg
		v.Channel = d.name()
		v.Origin = d.u64("origin")
		v.Node = d.node("node")
		m = v
	case KindPublish:
		var p PublishMsg
		p.Channel = d.name()
		p.Pub.Publisher = d.u64("publisher")
		p.Pub.Seq = d.u64("seq")
		p.Pub.Prev = d.u64("prev")
		p.Pub.Subject = d.key("subject")
		p.Pub.Token = d.bytes("token", MaxTokenLen)
		p.Pub.Payload = d.bytes("payload", MaxPayloadLen)
		m = p
	case KindDeliver:
		var v Deliver
		v.Channel = d.name()
		v.To = d.u64("to")
		v.Node = d.node("node")
		v.Stream = d.u64("stream")
		v.Seq = d.u64("seq")
		v.Prev = d.u64("prev")
		v.Sub = d.u64("sub")
		v.Payload = d.bytes("payload", MaxPayloadLen)
		if d.err == nil && v.Prev >= v.Seq {
			d.fail("deliver prev %d not below seq %d", v.Prev, v.Seq)
		}
		m = DeliverMsg{D: v}
	case KindAck, KindNack:
		var a AckMsg
		a.Channel = d.name()
		a.Ack.Origin = d.u64("origin")
		a.Ack.Sub = d.u64("sub")
		a.Ack.Stream = d.u64("stream")
		a.Ack.Seq = d.u64("seq")
		if k == KindAck {
			m = a
		} else {
			m = NackMsg(a)
		}
	case KindAnswer:
		var a AnswerMsg
		a.Code = Code(d.u8("code"))
		a.Outcome = Outcome(d.u8("outcome"))
		a.Seq = d.u64("seq")
		if d.err == nil && (a.Code >= codeEnd || a.Outcome > Duplicate) {
			d.fail("answer code %d outcome %d", a.Code, a.Outcome)
		}
		if raw := d.take(2, "detail length"); raw != nil {
			n := binary.BigEndian.Uint16(raw)
			if int(n) > MaxDetailLen {
				d.fail("detail of %d bytes", n)
			}
			a.Detail = string(d.take(int(n), "detail"))
		}
		m = a
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrBadMessage, k)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadMessage, len(d.b))
	}
	return m, nil
}
