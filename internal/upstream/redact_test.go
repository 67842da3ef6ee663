package upstream

import (
	"fmt"
	"testing"
)

type redactedThing struct{ secret string }

func (r redactedThing) Format(f fmt.State, verb rune) {
	FormatRedacted(f, verb, "{Secret:"+Redact(r.secret)+"}", "pkg.Thing{Secret:"+fmt.Sprintf("%q", Redact(r.secret))+"}")
}

func TestRedact(t *testing.T) {
	if Redact("") != "" || Redact(secret) != Redacted {
		t.Fatalf("Redact: %q, %q", Redact(""), Redact(secret))
	}
	v := redactedThing{secret: secret}
	for verb, want := range map[string]string{
		"%v":  "{Secret:[REDACTED]}",
		"%+v": "{Secret:[REDACTED]}",
		"%s":  "{Secret:[REDACTED]}",
		"%x":  "{Secret:[REDACTED]}",
		"%d":  "{Secret:[REDACTED]}",
		"%q":  `"{Secret:[REDACTED]}"`,
		"%#v": `pkg.Thing{Secret:"[REDACTED]"}`,
	} {
		if got := fmt.Sprintf(verb, v); got != want {
			t.Errorf("%s: %q, want %q", verb, got, want)
		}
	}
}
