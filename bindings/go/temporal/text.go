package temporal

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// unprintable is the library's rule (src/providers/kit/text.rs): C0 controls (ESC starts every
// escape sequence; BEL ends an OSC such as a title or an OSC 52 clipboard write), DEL, C1
// controls (U+009B is a one-character CSI for some terminals) and the bidirectional overrides
// and isolates that make text show in an order other than its own.
func unprintable(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// Printable is s safe to print on a terminal, as the library's printable: every control
// character (C0, newline and tab too, DEL, C1) and bidirectional override is written as a
// \u{..} escape, so that a name or a message that came from a cloud, a worker or a wave's
// history cannot clear the screen, set the title or write the clipboard. A byte that is not
// UTF-8 (a raw 0x9b is a CSI to an 8-bit terminal) is written as \x{..}. Text without any is
// returned as it is.
func Printable(s string) string {
	clean := true
	for i, r := range s {
		if unprintable(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\x{%x}", s[i])
		case unprintable(r):
			fmt.Fprintf(&b, "\\u{%x}", r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// PrintableJSON is JSON text (from encoding/json, which escapes C0 controls in strings itself
// but leaves DEL, C1 and the bidirectional overrides raw) with those written as JSON's own \u
// escapes: the same value, safe on a terminal.
func PrintableJSON(js []byte) []byte {
	s := string(js)
	var b strings.Builder
	for _, r := range s {
		// Below DEL only the indentation's newlines are left, which are JSON's, not a value's.
		if r >= 0x7f && unprintable(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
		} else {
			b.WriteRune(r)
		}
	}
	return []byte(b.String())
}
