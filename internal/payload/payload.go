// Package payload converts event payloads between bytes and the text forms
// operators type and read: raw text, hex and base64.
package payload

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Format is a payload text form.
type Format string

// Formats.
const (
	Text   Format = "text"
	Hex    Format = "hex"
	Base64 Format = "base64"
)

// ErrBadFormat reports an unknown format name or undecodable input.
var ErrBadFormat = errors.New("payload: bad format")

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Text, Hex, Base64:
		return f, nil
	}
	return "", fmt.Errorf("%w: %q (want text, hex or base64)", ErrBadFormat, s)
}

// Decode turns one line of input into payload bytes.
func (f Format) Decode(s string) ([]byte, error) {
	switch f {
	case Text:
		return []byte(s), nil
	case Hex:
		b, err := hex.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: not hex: %v", ErrBadFormat, err)
		}
		return b, nil
	case Base64:
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: not base64: %v", ErrBadFormat, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrBadFormat, string(f))
}

// DecodeBytes is Decode of a line the caller hands over: text comes back
// as b itself, not a copy.
func (f Format) DecodeBytes(b []byte) ([]byte, error) {
	if f == Text {
		return b, nil
	}
	return f.Decode(string(b))
}

// AppendEncode appends the rendering of b (Encode) to dst.
func (f Format) AppendEncode(dst, b []byte) []byte {
	switch f {
	case Hex:
		return hex.AppendEncode(dst, b)
	case Base64:
		return base64.StdEncoding.AppendEncode(dst, b)
	}
	return append(dst, b...)
}

// Encode renders payload bytes for output.
func (f Format) Encode(b []byte) string {
	switch f {
	case Hex:
		return hex.EncodeToString(b)
	case Base64:
		return base64.StdEncoding.EncodeToString(b)
	}
	return string(b)
}
