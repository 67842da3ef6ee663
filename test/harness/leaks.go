package harness

import (
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Leak is one finding of a leak check: where a sensitive value showed up and what it was. It never
// holds the value itself.
type Leak struct {
	Where, What string
}

func (l Leak) String() string { return l.What + " in " + l.Where }

// Header shapes that must never reach a log or an event, whatever the values.
var leakPatterns = []struct {
	what string
	re   *regexp.Regexp
}{
	{"an Authorization header", regexp.MustCompile(`(?i)\bauthorization\b["']?\s*[:=]\s*["']?\w`)},
	{"a Basic credential", regexp.MustCompile(`\bBasic\s+[A-Za-z0-9+/]{8,}={0,2}`)},
	{"a Bearer credential", regexp.MustCompile(`\bBearer\s+[A-Za-z0-9._~+/-]{8,}`)},
}

// Sensitive is a set of values (app secrets, issued tokens, Basic header values) that must never appear
// in logs, events or statuses. It is safe for concurrent use.
type Sensitive struct {
	mu   sync.Mutex
	vals map[string]string // value -> description
}

// Add records value, described by what (which must not contain the value). Empty values are ignored.
func (s *Sensitive) Add(what, value string) {
	if value == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vals == nil {
		s.vals = map[string]string{}
	}
	if _, ok := s.vals[value]; !ok {
		s.vals[value] = what
	}
}

// AddCredentials records an app secret and the Basic header value made from it.
func (s *Sensitive) AddCredentials(key, secret string) {
	s.Add("the secret of app key "+key, secret)
	s.Add("the Basic credential of app key "+key, base64.StdEncoding.EncodeToString([]byte(key+":"+secret)))
}

// Len is how many values are recorded.
func (s *Sensitive) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.vals)
}

// Count is how many recorded values have a description starting with prefix.
func (s *Sensitive) Count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, what := range s.vals {
		if strings.HasPrefix(what, prefix) {
			n++
		}
	}
	return n
}

// Scan reports every recorded value, and every Authorization, Basic or Bearer header value, in text.
// where names the text in the findings.
func (s *Sensitive) Scan(where, text string) []Leak {
	var out []Leak
	s.mu.Lock()
	for v, what := range s.vals {
		if strings.Contains(text, v) {
			out = append(out, Leak{Where: where, What: what})
		}
	}
	s.mu.Unlock()
	for _, p := range leakPatterns {
		if p.re.MatchString(text) {
			out = append(out, Leak{Where: where, What: p.what})
		}
	}
	slices.SortFunc(out, func(a, b Leak) int { return strings.Compare(a.What, b.What) })
	return out
}
