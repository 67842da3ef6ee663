package upstream

import (
	"fmt"
	"io"
	"strconv"
)

// Redacted replaces a secret value in every rendering of a type that holds one.
const Redacted = "[REDACTED]"

// Redact returns Redacted for a non-empty s and "" for an empty one: showing that a value is
// missing helps debugging and reveals nothing.
func Redact(s string) string {
	if s == "" {
		return ""
	}
	return Redacted
}

// FormatRedacted implements fmt.Formatter for a type that holds a secret: %#v prints goSyntax,
// %q the quoted s, and every other verb (%v, %+v, %s, %x, %d, ...) s as is. s and goSyntax must
// already be redacted. Without a Format method, verbs such as %x or %d would print the raw fields.
func FormatRedacted(f fmt.State, verb rune, s, goSyntax string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, goSyntax)
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(s))
	default:
		_, _ = io.WriteString(f, s)
	}
}
