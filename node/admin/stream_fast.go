package admin

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"unicode/utf8"

	"github.com/wasmesh/wasmesh/internal/slab"
	"github.com/wasmesh/wasmesh/node"
)

// Fast paths for the stream's hot lines. encoding/json costs more per
// event than the daemon does; these read and write the one shape the Go
// client and the node produce ({"text":"..."} lines, answers with outputs)
// by hand, and hand anything else (escapes, other key orders, errors) to
// encoding/json. A fuzz test checks they agree with it on every input.

// plain reports whether s needs no escaping in JSON and reads back as is:
// printable ASCII without quote or backslash.
func plain[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// scanner reads a prefix-matched line.
type scanner struct {
	b  []byte
	ok bool
}

func (s *scanner) lit(l string) bool {
	if s.ok && len(s.b) >= len(l) && string(s.b[:len(l)]) == l {
		s.b = s.b[len(l):]
		return true
	}
	return false
}

func (s *scanner) peek(l string) bool {
	return s.ok && len(s.b) >= len(l) && string(s.b[:len(l)]) == l
}

// str reads a plain JSON string body up to its closing quote.
func (s *scanner) str() []byte {
	if !s.ok {
		return nil
	}
	for i := 0; i < len(s.b); i++ {
		c := s.b[i]
		if c == '"' {
			v := s.b[:i]
			s.b = s.b[i+1:]
			return v
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			break
		}
	}
	s.ok = false
	return nil
}

// digits reads a decimal without sign or leading zero (a lone 0 is fine).
func (s *scanner) digits(max int) (uint64, bool) {
	if !s.ok {
		return 0, false
	}
	i := 0
	for i < len(s.b) && i <= max && s.b[i] >= '0' && s.b[i] <= '9' {
		i++
	}
	if i == 0 || i > max || (i > 1 && s.b[0] == '0') {
		s.ok = false
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[:i]), 10, 64)
	if err != nil {
		s.ok = false
		return 0, false
	}
	s.b = s.b[i:]
	return v, true
}

// end accepts the closing brace and trailing white space only.
func (s *scanner) end() bool {
	if !s.lit("}") {
		return false
	}
	for _, c := range s.b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// fastStreamLine is DecodeStreamLine for {"text"|"hex"|"base64":"..."}
// with optional "event_id" then "line", written without white space; ok is
// false when the line is anything else (DecodeStreamLine decides).
func fastStreamLine(b []byte, line int, keep *slab.Bytes) (ev node.StreamEvent, ok bool) {
	s := scanner{b: b, ok: true}
	var kind string
	switch {
	case s.lit(`{"text":"`):
		kind = "text"
	case s.lit(`{"hex":"`):
		kind = "hex"
	case s.lit(`{"base64":"`):
		kind = "base64"
	default:
		return ev, false
	}
	val := s.str()
	ev.Line = line
	if s.lit(`,"event_id":`) {
		quoted := s.lit(`"`)
		id, _ := s.digits(20)
		if quoted && !s.lit(`"`) || !quoted && id > maxSafeInt {
			return ev, false
		}
		ev.EventID = id
	}
	if s.lit(`,"line":`) {
		l, _ := s.digits(9)
		if l > 0 {
			ev.Line = int(l)
		}
	}
	if !s.end() {
		return ev, false
	}
	var err error
	switch kind {
	case "text":
		if keep != nil {
			ev.Payload = keep.Copy(val)
		} else {
			ev.Payload = []byte(string(val))
		}
	case "hex":
		ev.Payload, err = hex.DecodeString(string(val))
	default:
		ev.Payload, err = base64.StdEncoding.Strict().DecodeString(string(val))
	}
	if err != nil {
		return node.StreamEvent{}, false
	}
	return ev, true
}

// appendStreamLine is the wire form of l (what json.Marshal gives, without
// its newline) when its text is plain; ok false otherwise.
func appendStreamLine(b []byte, l StreamLine) ([]byte, bool) {
	switch {
	case l.Payload != nil:
		if l.Text != nil || l.Hex != nil || l.Base64 != nil {
			return b, false
		}
		if plain(l.Payload) {
			b = append(b, `{"text":"`...)
			b = append(b, l.Payload...)
		} else {
			// What LineOf would choose: text only when plain here, so a
			// UTF-8 payload that needs escapes goes the slow way.
			if utf8.Valid(l.Payload) {
				return b, false
			}
			b = append(b, `{"base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, l.Payload)
		}
	case l.Text != nil && l.Hex == nil && l.Base64 == nil && plain(*l.Text):
		b = append(b, `{"text":"`...)
		b = append(b, *l.Text...)
	case l.Base64 != nil && l.Text == nil && l.Hex == nil && plain(*l.Base64):
		b = append(b, `{"base64":"`...)
		b = append(b, *l.Base64...)
	default:
		return b, false
	}
	b = append(b, '"')
	if l.EventID != 0 {
		b = append(b, `,"event_id":"`...)
		b = strconv.AppendUint(b, uint64(l.EventID), 10)
		b = append(b, '"')
	}
	if l.Line != 0 {
		if l.Line < 0 {
			return b, false
		}
		b = append(b, `,"line":`...)
		b = strconv.AppendInt(b, int64(l.Line), 10)
	}
	return append(b, '}'), true
}

// appendAnswer is the wire form of a delivery's answer (what json.Marshal
// gives, without its newline); ok false for errors, the end line, or
// names that would need escaping.
func appendAnswer(b []byte, a StreamAnswer) ([]byte, bool) {
	if a.Error != "" || a.Code != "" || a.End != nil || a.Line <= 0 || !plain(a.Daemon) || !plain(a.Node) {
		return b, false
	}
	b = append(b, `{"line":`...)
	b = strconv.AppendInt(b, int64(a.Line), 10)
	if a.EventID != 0 {
		b = append(b, `,"event_id":"`...)
		b = strconv.AppendUint(b, uint64(a.EventID), 10)
		b = append(b, '"')
	}
	if a.Daemon != "" {
		b = append(b, `,"daemon":"`...)
		b = append(b, a.Daemon...)
		b = append(b, '"')
	}
	if a.Node != "" {
		b = append(b, `,"node":"`...)
		b = append(b, a.Node...)
		b = append(b, '"')
	}
	list := func(name string, l [][]byte) {
		if len(l) == 0 {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":[`...)
		for i, v := range l {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, v)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	list("outputs", a.Outputs)
	list("links", a.Links)
	if a.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}'), true
}

// answerNames keeps the daemon and node names of a stream's last answer:
// a stream's answers repeat them, so each is allocated once, not per line.
// Decoded outputs are copied into shared chunks (keep, lists) rather than
// allocated per answer.
type answerNames struct {
	daemon, node string
	tmp          []byte
	keep         slab.Bytes
	lists        [][]byte
}

func (n *answerNames) intern(b []byte, last *string) string {
	if string(b) != *last {
		*last = string(b)
	}
	return *last
}

// fastAnswer reads what appendAnswer writes; ok false for anything else.
func fastAnswer(line []byte) (a StreamAnswer, ok bool) {
	var n answerNames
	return n.fastAnswer(line)
}

func (n *answerNames) fastAnswer(line []byte) (a StreamAnswer, ok bool) {
	s := scanner{b: line, ok: true}
	if !s.lit(`{"line":`) {
		return a, false
	}
	l, _ := s.digits(9)
	a.Line = int(l)
	if s.lit(`,"event_id":"`) {
		id, _ := s.digits(20)
		if !s.lit(`"`) {
			return a, false
		}
		a.EventID = EventID(id)
	}
	if s.lit(`,"daemon":"`) {
		a.Daemon = n.intern(s.str(), &n.daemon)
	}
	if s.lit(`,"node":"`) {
		a.Node = n.intern(s.str(), &n.node)
	}
	list := func(name string) ([][]byte, bool) {
		if !s.lit(name) {
			return nil, true
		}
		// The values are decoded into one scratch buffer, then copied out
		// into shared chunks, capped, so an append to one cannot spill
		// into the next.
		arena := n.tmp[:0]
		defer func() { n.tmp = arena[:0] }()
		var endsBuf [8]int
		ends := endsBuf[:0]
		for !s.lit("]") {
			if len(ends) > 0 && !s.lit(",") || !s.lit(`"`) {
				return nil, false
			}
			var err error
			arena, err = base64.StdEncoding.Strict().AppendDecode(arena, s.str())
			if err != nil || !s.ok {
				return nil, false
			}
			ends = append(ends, len(arena))
		}
		k := len(ends)
		if len(n.lists) < k {
			n.lists = make([][]byte, max(k, 1024))
		}
		out := n.lists[:k:k]
		n.lists = n.lists[k:]
		off := 0
		for i, e := range ends {
			out[i] = n.keep.Copy(arena[off:e])
			off = e
		}
		return out, true
	}
	var okO, okL bool
	a.Outputs, okO = list(`,"outputs":[`)
	a.Links, okL = list(`,"links":[`)
	if !okO || !okL {
		return a, false
	}
	if s.lit(`,"duplicate":true`) {
		a.Duplicate = true
	}
	if !s.end() || a.Line <= 0 {
		return a, false
	}
	return a, true
}
