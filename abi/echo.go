package abi

import (
	"fmt"
	"strconv"
)

// EchoMax is how many bytes of an outside name an error message repeats.
const EchoMax = 64

// Echo quotes an outside string for an error message: control, bidi and
// invalid bytes escaped, and cut at EchoMax bytes with its full length, so
// a refusal of a megabyte name is a line, not a megabyte.
func Echo(s string) string {
	if len(s) <= EchoMax {
		return strconv.QuoteToGraphic(s)
	}
	cut := EchoMax
	// Cut at a rune start so the quoted prefix stays valid UTF-8.
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.QuoteToGraphic(s[:cut]), len(s))
}

// echoBare is Echo without the quotes when the string is short and plain,
// for items such as "import env.f" that read better unquoted.
func echoBare(s string) string {
	q := Echo(s)
	if len(s) <= EchoMax && q == strconv.Quote(s) && q[1:len(q)-1] == s {
		return s
	}
	return q
}
