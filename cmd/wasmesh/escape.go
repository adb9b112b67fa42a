package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"
)

// termSafe escapes what came from outside (guest log lines, names, node
// error messages) before it reaches the operator's terminal: C0/C1
// controls, ESC, bidi overrides and other format runes, and invalid UTF-8
// become Go escapes (\x1b, \u202e), so nothing printed can move the
// cursor, recolour or reorder the screen. keepNewline lets multi-line error
// text through; table cells and log lines pass false.
func termSafe(s string, keepNewline bool) string {
	clean := true
	for _, r := range s {
		if !safeRune(r, keepNewline) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case safeRune(r, keepNewline):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

func safeRune(r rune, keepNewline bool) bool {
	if r == '\n' {
		return keepNewline
	}
	if r == '\\' {
		// Escaped in cells and log lines so an escape there is unambiguous;
		// error text often quotes already-escaped names and keeps its own.
		return keepNewline
	}
	return r == ' ' || r != utf8.RuneError && unicode.IsGraphic(r)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
