package fakeclock

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The fixture's manager talks to the API server through apiWrites: it counts the manager's writes by
// verb, resource and subresource (issue 13: the API cost per credential), and can make the manager's
// cache lag behind its writes (lag), as a loaded API server's watch does, so that a pass reads an
// object before the cache shows what the previous pass wrote.

// apiWrite is one class of write: verb (POST, PUT, PATCH, DELETE), resource and subresource.
type apiWrite struct{ verb, resource, sub string }

func (w apiWrite) String() string {
	if w.sub != "" {
		return w.verb + " " + w.resource + "/" + w.sub
	}
	return w.verb + " " + w.resource
}

// apiWrites counts the writes that went through it, and delays the watch streams of lagged resources.
type apiWrites struct {
	mu     sync.Mutex
	counts map[apiWrite]int
	lagged map[string]time.Duration
}

func newAPIWrites() *apiWrites {
	return &apiWrites{counts: map[apiWrite]int{}, lagged: map[string]time.Duration{}}
}

// wrap is a rest.Config WrapTransport.
func (a *apiWrites) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resource, sub := resourceOf(r.URL.Path)
		if r.Method != http.MethodGet {
			a.mu.Lock()
			a.counts[apiWrite{r.Method, resource, sub}]++
			a.mu.Unlock()
		}
		resp, err := rt.RoundTrip(r)
		if err == nil && r.URL.Query().Get("watch") == "true" {
			resp.Body = &laggingBody{ReadCloser: resp.Body, lag: func() time.Duration { return a.lagOf(resource) }}
		}
		return resp, err
	})
}

// lag delays every event of resource's watch by d from now on (0: none).
func (a *apiWrites) lag(resource string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lagged[resource] = d
}

func (a *apiWrites) lagOf(resource string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lagged[resource]
}

// snapshot returns the counts so far.
func (a *apiWrites) snapshot() map[apiWrite]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.counts)
}

// writeCounts are the writes between two snapshots.
type writeCounts map[apiWrite]int

// since returns the writes counted after before.
func (a *apiWrites) since(before map[apiWrite]int) writeCounts {
	out := writeCounts{}
	for k, n := range a.snapshot() {
		if d := n - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// of sums the writes of resource and subresource sub ("" : the object itself), any verb.
func (c writeCounts) of(resource, sub string) int {
	n := 0
	for k, v := range c {
		if k.resource == resource && k.sub == sub {
			n += v
		}
	}
	return n
}

func (c writeCounts) String() string {
	keys := slices.SortedFunc(maps.Keys(c), func(a, b apiWrite) int { return strings.Compare(a.String(), b.String()) })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, c[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// resourceOf reads resource and subresource from an API path: /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]]
// or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]]. A namespace itself is "namespaces".
func resourceOf(path string) (resource, sub string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return "", ""
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return "", ""
	case 1, 2:
		return parts[0], ""
	}
	return parts[0], parts[2]
}

// laggingBody holds every chunk of a watch stream for lag() before handing it on.
type laggingBody struct {
	io.ReadCloser
	lag func() time.Duration
}

func (b *laggingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if d := b.lag(); n > 0 && d > 0 {
		time.Sleep(d)
	}
	return n, err
}
