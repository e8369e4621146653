package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Text from a server or a backed-up host (file names, error messages,
// backup names) is printed for people: control characters in it would be
// obeyed by their terminal (colours, a new title, the clipboard through
// OSC 52, a line wiped to hide what follows) and bidi controls would show
// a name reversed. termSafe writes them as visible escapes; newlines,
// tabs and carriage returns stay when keep says so.
func termSafe(s string, keep string) string {
	if isTermSafe(s, keep) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strings.ContainsRune(keep, r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unsafeRune(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

func isTermSafe(s, keep string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) && !strings.ContainsRune(keep, r) {
			return false
		}
	}
	return true
}

// unsafeRune: C0 and C1 controls, DEL, and the bidi embedding, override
// and isolate controls.
func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// safeWriter passes what is written through termSafe, keeping the line
// structure the client's own output uses (newlines, the tabs between
// columns, the carriage return that redraws the progress bar).
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, termSafe(string(p), "\n\t\r")); err != nil {
		return 0, err
	}
	return len(p), nil
}

// cell is one value of a table: a tab or newline in it would make a
// column or a row of its own.
func cell(s string) string { return termSafe(s, "") }
