package snapshot

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Annotations is what an operator knows a daemon by, as opposed to its
// state: its name and kind name, its counters and its recent log lines. They
// travel inside the signed snapshot so that a migrated or restarted daemon
// keeps them (FORMAT.md, "Annotations"). A snapshot without them encodes as
// version 1, byte for byte as before.
type Annotations struct {
	Name     string // operator-given daemon name ("" if none)
	KindName string // kind name it was spawned as ("" if by digest)
	Counters Counters
	Logs     []LogLine // oldest first
}

// Counters are a daemon's lifetime counters.
type Counters struct {
	EventsProcessed uint64
	EventsEmitted   uint64
	Errors          uint64
	Snapshots       uint64
	CPUNanos        uint64
	LogsDropped     uint64
}

// LogLine is one retained guest log line.
type LogLine struct {
	UnixNano int64
	Level    uint8 // abi.LogDebug .. abi.LogError
	Text     string
}

// Bounds of the annotations section. They are part of the format (not
// caller limits) so that every decoder accepts what every encoder writes,
// and so that what travels stays small next to the state it annotates.
const (
	MaxAnnotationName = 255      // bytes of Name, and of KindName
	MaxLogLines       = 100      // retained lines
	MaxLogBytes       = 64 << 10 // sum of the lines' text bytes
	maxLogLevel       = 3        // abi.LogError

	annotationsVersion = 1
	counterCount       = 6
	logLineFixed       = 8 + 1 + 2 // unix nano, level, text length
	// annotationsFixed: version, name and kind lengths, counters, line count.
	annotationsFixed = 1 + 1 + 1 + counterCount*8 + 2
	// MaxAnnotationsBytes bounds the whole section as encoded.
	MaxAnnotationsBytes = annotationsFixed + 2*MaxAnnotationName + MaxLogLines*logLineFixed + MaxLogBytes
)

// Clone returns a deep copy (strings are immutable, the slice is not).
func (a *Annotations) Clone() *Annotations {
	if a == nil {
		return nil
	}
	c := *a
	c.Logs = append([]LogLine(nil), a.Logs...)
	return &c
}

// TrimLogs keeps the newest lines that fit MaxLogLines and MaxLogBytes,
// cutting a single oversized line to MaxLogBytes at a rune boundary; an
// encoder fills the section with it instead of failing on a chatty daemon.
func TrimLogs(lines []LogLine) []LogLine {
	if len(lines) > MaxLogLines {
		lines = lines[len(lines)-MaxLogLines:]
	}
	total, first := 0, len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		if total+len(lines[i].Text) > MaxLogBytes {
			break
		}
		total += len(lines[i].Text)
		first = i
	}
	out := append([]LogLine(nil), lines[first:]...)
	if len(out) == 0 && len(lines) > 0 {
		l := lines[len(lines)-1]
		cut := MaxLogBytes
		for cut > 0 && !utf8.RuneStart(l.Text[cut]) {
			cut--
		}
		l.Text = l.Text[:cut]
		out = []LogLine{l}
	}
	return out
}

func (a *Annotations) validate() error {
	if len(a.Name) > MaxAnnotationName || len(a.KindName) > MaxAnnotationName {
		return invalid("annotation name or kind name over %d bytes", MaxAnnotationName)
	}
	if len(a.Logs) > MaxLogLines {
		return invalid("%d log lines, at most %d travel", len(a.Logs), MaxLogLines)
	}
	total := 0
	for i, l := range a.Logs {
		if l.Level > maxLogLevel {
			return invalid("log line %d has level %d", i, l.Level)
		}
		total += len(l.Text)
	}
	if total > MaxLogBytes {
		return invalid("%d bytes of log text, at most %d travel", total, MaxLogBytes)
	}
	return nil
}

func (a *Annotations) encodedSize() int {
	n := annotationsFixed + len(a.Name) + len(a.KindName)
	for _, l := range a.Logs {
		n += logLineFixed + len(l.Text)
	}
	return n
}

// appendAnnotations appends the section's payload (without its length).
func appendAnnotations(b []byte, a *Annotations) []byte {
	le := binary.LittleEndian
	b = append(b, annotationsVersion, byte(len(a.Name)), byte(len(a.KindName)))
	b = append(b, a.Name...)
	b = append(b, a.KindName...)
	c := a.Counters
	for _, v := range [counterCount]uint64{c.EventsProcessed, c.EventsEmitted, c.Errors, c.Snapshots, c.CPUNanos, c.LogsDropped} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint16(b, uint16(len(a.Logs)))
	for _, l := range a.Logs {
		b = le.AppendUint64(b, uint64(l.UnixNano))
		b = append(b, l.Level)
		b = le.AppendUint16(b, uint16(len(l.Text)))
		b = append(b, l.Text...)
	}
	return b
}

// decodeAnnotations strictly decodes exactly b (the section's payload).
func decodeAnnotations(b []byte) (*Annotations, error) {
	if len(b) > MaxAnnotationsBytes {
		return nil, malformed("annotations of %d bytes, at most %d", len(b), MaxAnnotationsBytes)
	}
	if len(b) < annotationsFixed {
		return nil, malformed("annotations truncated: %d bytes", len(b))
	}
	if b[0] != annotationsVersion {
		return nil, fmt.Errorf("%w: annotations version %d (this build reads %d)", ErrUnsupportedVersion, b[0], annotationsVersion)
	}
	le := binary.LittleEndian
	nl, kl := int(b[1]), int(b[2])
	off := 3
	if len(b) < annotationsFixed+nl+kl {
		return nil, malformed("annotations truncated in the names")
	}
	a := &Annotations{Name: string(b[off : off+nl]), KindName: string(b[off+nl : off+nl+kl])}
	off += nl + kl
	var cs [counterCount]uint64
	for i := range cs {
		cs[i] = le.Uint64(b[off:])
		off += 8
	}
	a.Counters = Counters{EventsProcessed: cs[0], EventsEmitted: cs[1], Errors: cs[2], Snapshots: cs[3], CPUNanos: cs[4], LogsDropped: cs[5]}
	count := int(le.Uint16(b[off:]))
	off += 2
	if count > MaxLogLines {
		return nil, malformed("%d log lines, at most %d", count, MaxLogLines)
	}
	if count*logLineFixed > len(b)-off {
		return nil, malformed("annotations truncated: %d log lines need at least %d bytes", count, count*logLineFixed)
	}
	if count > 0 {
		a.Logs = make([]LogLine, count)
	}
	total := 0
	for i := range a.Logs {
		if len(b)-off < logLineFixed {
			return nil, malformed("annotations truncated in log line %d", i)
		}
		l := LogLine{UnixNano: int64(le.Uint64(b[off:])), Level: b[off+8]}
		tl := int(le.Uint16(b[off+9:]))
		off += logLineFixed
		if l.Level > maxLogLevel {
			return nil, malformed("log line %d has level %d", i, l.Level)
		}
		if total += tl; total > MaxLogBytes {
			return nil, malformed("log text over %d bytes", MaxLogBytes)
		}
		if len(b)-off < tl {
			return nil, malformed("annotations truncated in log line %d", i)
		}
		l.Text = string(b[off : off+tl])
		off += tl
		a.Logs[i] = l
	}
	if off != len(b) {
		return nil, malformed("%d bytes after the annotations", len(b)-off)
	}
	return a, nil
}
