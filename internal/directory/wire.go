package directory

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Wire messages between a host (or an asker) and a home. The format is
// fixed and tiny so that the decoder can be exact: a version byte, a kind
// byte, then the kind's fields (uint64 big-endian, strings as a one-byte
// length and bytes). Anything else, trailing bytes included, is refused.
const wireVersion = 1

// Kind is a message's type.
type Kind byte

const (
	KindRegister   Kind = 1 // Entry: record it
	KindUnregister Kind = 2 // Entry (its name unused): remove it if not newer
	KindLookupID   Kind = 3 // Origin
	KindLookupName Kind = 4 // Name
	KindAnswer     Kind = 5 // Entries (zero or more), Refused
)

// MaxAnswer bounds the entries of one answer.
const MaxAnswer = MaxNamesPerEntry

// Message is one directory message.
type Message struct {
	Kind    Kind
	Entry   Entry   // register, unregister
	Origin  uint64  // lookup by id
	Name    string  // lookup by name
	Entries []Entry // answer
	// Refused is an answer to a register the home did not take (full):
	// the host keeps trying it later.
	Refused bool
}

// ErrMalformed is a message that does not decode.
var ErrMalformed = errors.New("malformed directory message")

// maxNode and maxName bound the strings: node ids are exactly
// 2*nodekey.NodeIDSize hex digits, daemon names at most 64 characters.
const (
	maxNode = 2 * nodekey.NodeIDSize
	maxName = 64
)

// MaxMessage is the largest encoding of a valid message.
const MaxMessage = 2 + 1 + 1 + MaxAnswer*(8+8+1+maxNode+1+maxName)

// Encode appends m's encoding to b.
func (m Message) Encode(b []byte) ([]byte, error) {
	b = append(b, wireVersion, byte(m.Kind))
	switch m.Kind {
	case KindRegister, KindUnregister:
		return appendEntry(b, m.Entry)
	case KindLookupID:
		return binary.BigEndian.AppendUint64(b, m.Origin), nil
	case KindLookupName:
		if err := checkName(m.Name, false); err != nil {
			return nil, err
		}
		return appendString(b, m.Name), nil
	case KindAnswer:
		if len(m.Entries) > MaxAnswer {
			return nil, fmt.Errorf("%w: %d entries, at most %d", ErrMalformed, len(m.Entries), MaxAnswer)
		}
		flags := byte(0)
		if m.Refused {
			flags = 1
		}
		b = append(b, flags, byte(len(m.Entries)))
		var err error
		for _, e := range m.Entries {
			if b, err = appendEntry(b, e); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: kind %d", ErrMalformed, m.Kind)
}

func appendEntry(b []byte, e Entry) ([]byte, error) {
	if err := checkNode(e.Node); err != nil {
		return nil, err
	}
	if err := checkName(e.Name, true); err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint64(b, e.Origin)
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	b = appendString(b, e.Node)
	return appendString(b, e.Name), nil
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

// Decode parses exactly one message: strict (every field checked, no
// trailing bytes) and bounded (nothing is allocated beyond the input's
// own size, and the input is refused above MaxMessage).
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessage {
		return Message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxMessage)
	}
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != wireVersion {
		return Message{}, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	m := Message{Kind: Kind(d.byte())}
	switch m.Kind {
	case KindRegister, KindUnregister:
		m.Entry = d.entry()
	case KindLookupID:
		m.Origin = d.u64()
	case KindLookupName:
		m.Name = d.str(maxName)
		if d.err == nil {
			d.check(checkName(m.Name, false))
		}
	case KindAnswer:
		flags := d.byte()
		if d.err == nil && flags > 1 {
			d.fail("flags %#x", flags)
		}
		m.Refused = flags == 1
		n := int(d.byte())
		if d.err == nil && n > MaxAnswer {
			d.fail("%d entries, at most %d", n, MaxAnswer)
		}
		for i := 0; i < n && d.err == nil; i++ {
			m.Entries = append(m.Entries, d.entry())
		}
	default:
		if d.err == nil {
			d.fail("kind %d", m.Kind)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Message{}, d.err
	}
	return m, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) check(err error) {
	if d.err == nil && err != nil {
		d.err = err
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated: need %d bytes, %d remain", n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) str(max int) string {
	n := int(d.byte())
	if d.err == nil && n > max {
		d.fail("string of %d bytes, at most %d", n, max)
		return ""
	}
	return string(d.take(n))
}

func (d *decoder) entry() Entry {
	e := Entry{Origin: d.u64(), Epoch: d.u64()}
	e.Node = d.str(maxNode)
	e.Name = d.str(maxName)
	if d.err == nil {
		d.check(checkNode(e.Node))
	}
	if d.err == nil {
		d.check(checkName(e.Name, true))
	}
	return e
}

// checkNode accepts a node id as the mesh spells it (NodeID.String):
// lowercase hex digits, exactly maxNode of them.
func checkNode(s string) error {
	if len(s) != maxNode {
		return fmt.Errorf("%w: node id of %d characters, want %d", ErrMalformed, len(s), maxNode)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: node id is not lowercase hex", ErrMalformed)
		}
	}
	return nil
}

// checkName accepts the daemon name alphabet (node.CheckName's):
// [A-Za-z0-9._-], 1-64 characters, alphanumeric first; empty only where a
// daemon may have no name.
func checkName(s string, emptyOK bool) error {
	if s == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("%w: empty name", ErrMalformed)
	}
	if len(s) > maxName {
		return fmt.Errorf("%w: name of %d characters, at most %d", ErrMalformed, len(s), maxName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return fmt.Errorf("%w: name %q is outside [A-Za-z0-9._-] (alphanumeric first)", ErrMalformed, s)
		}
	}
	return nil
}
