package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// API cost: the operator's requests to the API server by verb and resource. The API server counts every
// request it serves (apiserver_request_total on its /metrics); the benchmark counts its own on the way
// out (countingTransport), and the difference is the operator's (the manager is the only other client
// of the envtest control plane but for the API server's own loops, left out: apiServersOwn).

// apiServersOwn are the resources the API server's own loops read and write (its identity lease, the
// kubernetes Service's endpoints), which the operator does not touch.
var apiServersOwn = map[string]bool{"leases": true, "endpoints": true, "endpointslices": true, "services": true}

// apiKey is a request class as apiserver_request_total labels it: verb (GET, LIST, WATCH, POST, PUT,
// PATCH, APPLY, DELETE), resource and subresource.
type apiKey struct{ verb, resource, subresource string }

// verbConflict is the pseudo-verb of the writes refused with 409 Conflict (a stale resourceVersion, or
// AlreadyExists), counted once more under it; it is no write of its own.
const verbConflict = "CONFLICT"

func (k apiKey) String() string {
	if k.subresource != "" {
		return k.verb + " " + k.resource + "/" + k.subresource
	}
	return k.verb + " " + k.resource
}

func (k apiKey) write() bool {
	switch k.verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		return true
	}
	return false
}

type apiCounts map[apiKey]int

// apiCounter reads the API server's counts and the benchmark's own.
type apiCounter struct {
	server rest.Interface
	mu     sync.Mutex
	own    apiCounts
}

// newAPICounter returns a counter over the API server of cfg, and a client whose requests it counts as
// the benchmark's own (every phase must use it).
func newAPICounter(cfg *rest.Config, opts client.Options) (*apiCounter, client.WithWatch, error) {
	a := &apiCounter{own: apiCounts{}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	a.server = cs.Discovery().RESTClient()
	ccfg := rest.CopyConfig(cfg)
	ccfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, a} })
	c, err := client.NewWithWatch(ccfg, opts)
	return a, c, err
}

// snapshot returns the operator's requests so far: the API server's minus the benchmark's.
func (a *apiCounter) snapshot(ctx context.Context) (apiCounts, error) {
	b, err := a.server.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	out := apiCounts{}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			continue
		}
		labels := parseLabels(rest[:end])
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+1:]), 64)
		if err != nil || labels["resource"] == "" || apiServersOwn[labels["resource"]] {
			continue
		}
		out[apiKey{labels["verb"], labels["resource"], labels["subresource"]}] += int(v)
		if labels["code"] == "409" {
			// Refused writes count as writes (the API server served them); they are also listed apart.
			out[apiKey{verbConflict, labels["resource"], labels["subresource"]}] += int(v)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, n := range a.own {
		out[k] -= n
		if out[k] <= 0 {
			delete(out, k)
		}
	}
	return out, nil
}

// since returns the requests in c that were not in before.
func (c apiCounts) since(before apiCounts) apiCounts {
	out := apiCounts{}
	for k, n := range c {
		if d := n - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// writes sums the write requests to resource (and subresource, "" for the object itself); resource ""
// sums every resource.
func (c apiCounts) writes(resource, subresource string) int {
	n := 0
	for k, v := range c {
		if k.write() && (resource == "" || (k.resource == resource && k.subresource == subresource)) {
			n += v
		}
	}
	return n
}

// String lists the counts, writes first.
func (c apiCounts) String() string {
	keys := make([]apiKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].write() != keys[j].write() {
			return keys[i].write()
		}
		return keys[i].String() < keys[j].String()
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, c[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// parseLabels parses a Prometheus label set (without its braces).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			break
		}
		name := strings.TrimLeft(s[:eq], ", ")
		rest := s[eq+2:]
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			v.WriteByte(rest[i])
		}
		out[name] = v.String()
		if i+1 > len(rest) {
			break
		}
		s = rest[i+1:]
	}
	return out
}

// countingTransport counts the benchmark's own requests the way the API server labels them.
type countingTransport struct {
	rt http.RoundTripper
	a  *apiCounter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if k, ok := classify(req); ok {
		t.a.mu.Lock()
		t.a.own[k]++
		t.a.mu.Unlock()
	}
	return t.rt.RoundTrip(req)
}

// classify names a request as apiserver_request_total does: /api/v1/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]
// or /apis/<group>/<version>/..., GET of a collection is LIST (WATCH with watch=true), a PATCH of
// application/apply-patch+yaml is APPLY. A namespace itself is /api/v1/namespaces/<name>.
func classify(req *http.Request) (apiKey, bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return apiKey{}, false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return apiKey{}, false
	}
	k := apiKey{resource: parts[0]}
	named := len(parts) >= 2
	if len(parts) >= 3 {
		k.subresource = parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			k.verb = "WATCH"
		case named:
			k.verb = "GET"
		default:
			k.verb = "LIST"
		}
	case http.MethodPatch:
		k.verb = "PATCH"
		if strings.HasPrefix(req.Header.Get("Content-Type"), "application/apply-patch") {
			k.verb = "APPLY"
		}
	case http.MethodDelete:
		k.verb = "DELETE"
		if !named {
			k.verb = "DELETECOLLECTION"
		}
	default:
		k.verb = req.Method
	}
	return k, true
}
