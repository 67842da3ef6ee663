package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfterSeconds rejects values that would overflow time.Duration; callers still cap the
// result to their own policy (a retry must land before the current credential expires).
const maxRetryAfterSeconds = int64(1<<63-1) / int64(time.Second)

// ParseRetryAfter parses a Retry-After header value: delay-seconds or an HTTP-date (RFC 9110
// §10.2.3), the latter relative to now. It reports false for an empty or malformed value. A date
// in the past yields (0, true): the server allows a retry now. now is a parameter so decisions
// stay testable with a fake clock.
func ParseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if isDigits(h) {
		secs, err := strconv.ParseInt(h, 10, 64)
		if err != nil || secs > maxRetryAfterSeconds {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

// isDigits reports whether s is 1*DIGIT; strconv alone would also accept signs.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
