package meshquic

import (
	"encoding/binary"
	"fmt"
)

// maxMsgDepth bounds nesting of arrays and maps in a message. Ours nest two
// or three deep; the bound keeps the decoder's recursion (it skips unknown
// fields recursively) far from the stack limit.
const maxMsgDepth = 32

// checkMsgpack verifies that body is exactly one well-formed msgpack value
// whose every declared length fits in the bytes that follow it, before the
// decoder sees it. The decoder trusts declared lengths when decoding into
// []byte (it allocates the declared size up front), so without this a
// 40-byte frame claiming a 4 GiB byte string would allocate 4 GiB.
func checkMsgpack(body []byte) error {
	// stack holds, per open container, how many values it still expects.
	var stack [maxMsgDepth + 1]uint64
	depth := 0
	stack[0] = 1
	p := 0
	need := func(n uint64) error {
		if n > uint64(len(body)-p) {
			return fmt.Errorf("%w: value claims %d bytes, %d remain", ErrMalformed, n, len(body)-p)
		}
		return nil
	}
	readLen := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(body[p])
		case 2:
			n = uint64(binary.BigEndian.Uint16(body[p:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(body[p:]))
		}
		p += size
		return n, nil
	}
	for {
		for depth > 0 && stack[depth] == 0 {
			depth--
		}
		if stack[depth] == 0 {
			break
		}
		stack[depth]--
		if err := need(1); err != nil {
			return err
		}
		c := body[p]
		p++
		var skip uint64 // bytes of payload to skip
		var items uint64
		isContainer := false
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items, isContainer = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f:
			items, isContainer = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip, err = readLen(1)
		case c == 0xc5 || c == 0xda:
			skip, err = readLen(2)
		case c == 0xc6 || c == 0xdb:
			skip, err = readLen(4)
		case c == 0xc7, c == 0xc8, c == 0xc9:
			skip, err = readLen(1 << (c - 0xc7))
			skip++ // ext type byte
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c >= 0xcc && c <= 0xcf:
			skip = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3:
			skip = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			items, err = readLen(2)
			isContainer = true
		case c == 0xdd:
			items, err = readLen(4)
			isContainer = true
		case c == 0xde:
			items, err = readLen(2)
			items, isContainer = 2*items, true
		case c == 0xdf:
			items, err = readLen(4)
			items, isContainer = 2*items, true
		default: // 0xc1 is never used
			return fmt.Errorf("%w: invalid msgpack code 0x%02x", ErrMalformed, c)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		p += int(skip)
		if isContainer && items > 0 {
			// Every element takes at least one byte.
			if err := need(items); err != nil {
				return err
			}
			if depth == maxMsgDepth {
				return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxMsgDepth)
			}
			depth++
			stack[depth] = items
		}
	}
	if p != len(body) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(body)-p)
	}
	return nil
}
