package thingspace

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// --- UWS credential rules (seed 001) ---

const (
	uwsUsernameMin, uwsUsernameMax = 2, 32
	uwsPasswordMin, uwsPasswordMax = 8, 32
	// uwsForbidden are the characters the policy rules out: ; & < > [ ] , . ' " /
	uwsForbidden = ";&<>[],.'\"/"
)

// commonSequences are the "common sequences of characters such as '12345' or 'qwerty'" the
// policy forbids, lower case. Runs of the digits and the alphabet are added in init.
var commonSequences = []string{"qwerty", "ytrewq", "qwertz", "azerty", "asdfgh", "zxcvbn", "password"}

func init() {
	for _, run := range []string{"01234567890", "09876543210", "abcdefghijklmnopqrstuvwxyz"} {
		for i := 0; i+5 <= len(run); i++ {
			commonSequences = append(commonSequences, run[i:i+5])
		}
	}
}

// ValidateUWS checks creds against Verizon's UWS credential rules (seed 001). problems break
// rules no valid login can break (lengths, forbidden or control characters): a login with them
// is bound to fail and would count towards the lockout. warnings are the rest of the policy for
// new passwords (an upper case letter, a lower case letter, a digit, a symbol; no common
// sequences), which Verizon's own generated passwords do not always meet, so existing passwords
// that break them may still work.
//
// Messages are fixed sentences and lengths; they never quote the password or any part of it.
func ValidateUWS(creds UWSCredentials) (problems []string, warnings []string) {
	u, p := creds.Username, creds.Password

	switch n := utf8.RuneCountInString(u); {
	case u == "":
		problems = append(problems, "username is empty")
	case !utf8.ValidString(u):
		problems = append(problems, "username is not valid UTF-8")
	case n < uwsUsernameMin || n > uwsUsernameMax:
		problems = append(problems, fmt.Sprintf("username is %s long; %d to %d required", characters(n), uwsUsernameMin, uwsUsernameMax))
	}
	if utf8.ValidString(u) && hasControlRune(u) {
		problems = append(problems, "username contains control characters")
	}

	if p == "" {
		return append(problems, "password is empty"), warnings
	}
	if !utf8.ValidString(p) {
		// Nothing more can be said reliably about bytes that are not text.
		return append(problems, "password is not valid UTF-8"), warnings
	}
	if n := utf8.RuneCountInString(p); n < uwsPasswordMin || n > uwsPasswordMax {
		problems = append(problems, fmt.Sprintf("password is %s long; %d to %d required", characters(n), uwsPasswordMin, uwsPasswordMax))
	}
	if strings.ContainsAny(p, uwsForbidden) {
		problems = append(problems, `password contains a forbidden character (one of ; & < > [ ] , . ' " /)`)
	}
	if hasControlRune(p) {
		problems = append(problems, "password contains control characters (a trailing newline?)")
	}

	var upper, lower, digit, symbol bool
	for _, r := range p {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsControl(r), unicode.IsLetter(r):
		default:
			symbol = true
		}
	}
	if !upper {
		warnings = append(warnings, "password has no upper case letter")
	}
	if !lower {
		warnings = append(warnings, "password has no lower case letter")
	}
	if !digit {
		warnings = append(warnings, "password has no digit")
	}
	if !symbol {
		warnings = append(warnings, "password has no symbol")
	}
	if hasCommonSequence(p) {
		warnings = append(warnings, "password contains a common sequence (such as 12345, qwerty or abcde) or one character five times in a row")
	}
	return problems, warnings
}

func characters(n int) string {
	if n == 1 {
		return "1 character"
	}
	return strconv.Itoa(n) + " characters"
}

func hasCommonSequence(p string) bool {
	lp := strings.ToLower(p)
	for _, s := range commonSequences {
		if strings.Contains(lp, s) {
			return true
		}
	}
	run, last := 0, rune(-1)
	for _, r := range lp {
		if r == last {
			run++
		} else {
			run, last = 1, r
		}
		if run >= 5 {
			return true
		}
	}
	return false
}

// --- redaction (see redact.go) ---

// String renders the username and a redacted password.
func (c UWSCredentials) String() string {
	return "{Username:" + c.Username + " Password:" + upstream.Redact(c.Password) + "}"
}

// GoString serves %#v.
func (c UWSCredentials) GoString() string {
	return "thingspace.UWSCredentials{Username:" + strconv.Quote(c.Username) + ", Password:" + strconv.Quote(upstream.Redact(c.Password)) + "}"
}

// Format makes every fmt verb go through the redacted forms (see upstream.FormatRedacted).
func (c UWSCredentials) Format(f fmt.State, verb rune) {
	upstream.FormatRedacted(f, verb, c.String(), c.GoString())
}

// MarshalJSON redacts the password, so json.Marshal cannot be used to store UWSCredentials.
func (c UWSCredentials) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

// LogValue serves log/slog.
func (c UWSCredentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", upstream.Redact(c.Password)))
}

// MarshalLog serves logr.
func (c UWSCredentials) MarshalLog() any { return c.redacted() }

type redactedUWSCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c UWSCredentials) redacted() redactedUWSCredentials {
	return redactedUWSCredentials{Username: c.Username, Password: upstream.Redact(c.Password)}
}
