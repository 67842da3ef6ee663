package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// injecting stands in for the credentials transport: it sets the headers (or fails with err).
type injecting struct {
	base http.RoundTripper
	err  error
}

func (t *injecting) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.err != nil {
		return nil, t.err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer injected")
	r.Header.Set("VZ-M2M-Token", "injected-session")
	return t.base.RoundTrip(r)
}

// seen is what the upstream received.
type seen struct {
	method, path, query, host, auth, m2m, xff, body string
}

func newUpstream(t *testing.T) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Get("Authorization"),
			r.Header.Get("VZ-M2M-Token"), r.Header.Get("X-Forwarded-For"), string(b)}
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(up.Close)
	return up, ch
}

func newTestHandler(t *testing.T, upstream string, tr http.RoundTripper, mut func(*HandlerOptions)) (*Handler, *Metrics) {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	o := HandlerOptions{Upstream: u, Transport: tr, Timeout: 5 * time.Second, Metrics: m}
	if mut != nil {
		mut(&o)
	}
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	return h, m
}

// The client's own Authorization and VZ-M2M-Token never reach the upstream: the transport's do.
// The upstream's host is used, its path prefix joined, the query kept, no X-Forwarded-For added.
func TestHandlerForwardsWithTheTransportsHeadersOnly(t *testing.T) {
	up, ch := newUpstream(t)
	h, m := newTestHandler(t, up.URL+"/cloud/1", &injecting{base: http.DefaultTransport}, nil)
	px := httptest.NewServer(h)
	defer px.Close()

	req, _ := http.NewRequest(http.MethodPost, px.URL+"/api/m2m/v1/devices/actions/list?x=1", strings.NewReader(`{"a":1}`))
	req.Header.Set("Authorization", "Bearer the-clients-own")
	req.Header.Set("VZ-M2M-Token", "the-clients-session")
	req.Header.Set("X-Forwarded-For", "10.0.0.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("status %d, want the upstream's 418", resp.StatusCode)
	}
	got := <-ch
	want := seen{"POST", "/cloud/1/api/m2m/v1/devices/actions/list", "x=1", strings.TrimPrefix(up.URL, "http://"),
		"Bearer injected", "injected-session", "", `{"a":1}`}
	if got != want {
		t.Errorf("upstream saw %+v\nwant %+v", got, want)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues("4xx", SourceUpstream)); v != 1 {
		t.Errorf("requests{4xx,upstream} = %v, want 1", v)
	}
}

// Without the transport (a plain one), the client's headers are still stripped: the proxy itself
// removes them, not the library.
func TestHandlerStripsClientCredentialHeaders(t *testing.T) {
	up, ch := newUpstream(t)
	h, _ := newTestHandler(t, up.URL, http.DefaultTransport, nil)
	px := httptest.NewServer(h)
	defer px.Close()
	req, _ := http.NewRequest(http.MethodGet, px.URL+"/api/x", nil)
	req.Header.Set("Authorization", "Bearer the-clients-own")
	req.Header.Set("Vz-M2m-Token", "the-clients-session")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got := <-ch; got.auth != "" || got.m2m != "" {
		t.Errorf("upstream saw Authorization %q, VZ-M2M-Token %q: want neither", got.auth, got.m2m)
	}
}

// rawRequest writes one request line by hand (an absolute URI, a CONNECT) and returns the status.
func rawRequest(t *testing.T, addr, head string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := io.WriteString(c, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// No open proxy: an absolute-URI request goes to the upstream (its host ignored), CONNECT is refused.
func TestHandlerIsNoOpenProxy(t *testing.T) {
	up, ch := newUpstream(t)
	h, m := newTestHandler(t, up.URL, &injecting{base: http.DefaultTransport}, nil)
	px := httptest.NewServer(h)
	defer px.Close()
	addr := strings.TrimPrefix(px.URL, "http://")

	if code := rawRequest(t, addr, "GET http://elsewhere.example/api/x HTTP/1.1\r\nHost: elsewhere.example"); code != http.StatusTeapot {
		t.Fatalf("absolute-URI request: status %d, want the upstream's 418", code)
	}
	if got := <-ch; got.path != "/api/x" || got.host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("absolute-URI request reached %s%s, want the upstream", got.host, got.path)
	}

	if code := rawRequest(t, addr, "CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443"); code != http.StatusMethodNotAllowed {
		t.Errorf("CONNECT: status %d, want 405", code)
	}
	select {
	case got := <-ch:
		t.Errorf("CONNECT reached the upstream: %+v", got)
	default:
	}
	if v := testutil.ToFloat64(m.refused.WithLabelValues("connect")); v != 1 {
		t.Errorf("refused{connect} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues("4xx", SourceProxy)); v != 1 {
		t.Errorf("requests{4xx,proxy} = %v, want 1", v)
	}
}

var errNoCred = errors.New("no credential")

// The proxy's own answers when the transport fails: 503 without a credential, 504 on the
// timeout, 502 otherwise; each counted as the proxy's.
func TestHandlerTransportFailures(t *testing.T) {
	blocked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	slow := httptest.NewServer(blocked)
	defer slow.Close()
	for _, tc := range []struct {
		name     string
		upstream string
		tr       http.RoundTripper
		want     int
	}{
		{"no credential", "http://127.0.0.1:1", &injecting{err: errNoCred}, http.StatusServiceUnavailable},
		{"unreachable", "http://127.0.0.1:1", &injecting{base: http.DefaultTransport}, http.StatusBadGateway},
		{"timeout", slow.URL, &injecting{base: http.DefaultTransport}, http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, m := newTestHandler(t, tc.upstream, tc.tr, func(o *HandlerOptions) {
				o.Timeout = 200 * time.Millisecond
				o.NoCredential = func(err error) bool { return errors.Is(err, errNoCred) }
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/api/x", nil))
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
			if v := testutil.ToFloat64(m.requests.WithLabelValues("5xx", SourceProxy)); v != 1 {
				t.Errorf("requests{5xx,proxy} = %v, want 1", v)
			}
		})
	}
}

func TestCheckUpstream(t *testing.T) {
	for raw, want := range map[string]string{
		"https://thingspace.verizon.com":            "",
		"https://api.cloudapi.verizon.com/cloud/1":  "",
		"http://127.0.0.1:8088":                     "plain http",
		"ftp://thingspace.verizon.com":              "scheme",
		"https://u:p@thingspace.verizon.com":        "user info",
		"https://thingspace.verizon.com/?a=b":       "query",
		"thingspace.verizon.com":                    "absolute URL",
		"https://thingspace.verizon.com/#fragment!": "query or fragment",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckUpstream(u, false)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckUpstream(%s) = %v, want %q", raw, err, want)
		}
	}
	if err := CheckUpstream(&url.URL{Scheme: "http", Host: "127.0.0.1:8088"}, true); err != nil {
		t.Errorf("plain http with allowInsecure: %v", err)
	}
}

// The pod's workloads share the operator's M2M session: a logout or a password reset through the
// proxy would end or change it for every holder, so they are refused unsent, however spelt.
func TestHandlerRefusesSessionManagement(t *testing.T) {
	up, ch := newUpstream(t)
	h, m := newTestHandler(t, up.URL, &injecting{base: http.DefaultTransport}, nil)
	px := httptest.NewServer(h)
	defer px.Close()
	addr := strings.TrimPrefix(px.URL, "http://")
	for _, line := range []string{
		"POST /api/m2m/v1/session/logout HTTP/1.1",
		"PUT /api/m2m/v1/session/password/actions/reset HTTP/1.1",
		"POST //api/m2m/v1//session/logout/ HTTP/1.1",
		"POST /api/M2M/v1/Session/Logout HTTP/1.1",
		"POST /api/m2m/v1/session%2Flogout HTTP/1.1",
		"POST /api/m2m/v1/x/../session/logout HTTP/1.1",
		"PUT /api/m2m/v1/session/password%2Factions/reset HTTP/1.1",
		"POST /api/m2m/v1/session/logout;jsessionid=1 HTTP/1.1",
	} {
		if code := rawRequest(t, addr, line+"\r\nHost: x\r\nContent-Length: 0"); code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", line, code)
		}
	}
	select {
	case got := <-ch:
		t.Errorf("a session management call reached the upstream: %+v", got)
	default:
	}
	if v := testutil.ToFloat64(m.refused.WithLabelValues("session_management")); v != 8 {
		t.Errorf("refused{session_management} = %v, want 8", v)
	}
	for _, line := range []string{
		"POST /api/m2m/v1/session/login HTTP/1.1",
		"GET /api/m2m/v1/accounts/0000123456-00001 HTTP/1.1",
		"GET /api/m2m/v1/session/logoutx HTTP/1.1",
	} {
		if code := rawRequest(t, addr, line+"\r\nHost: x\r\nContent-Length: 0"); code != http.StatusTeapot {
			t.Errorf("%s: status %d, want the upstream's 418", line, code)
		}
		<-ch
	}
}

// Behind an upstream with a path prefix, the refusal applies to the path the upstream would see.
func TestHandlerRefusesSessionManagementUnderAPrefix(t *testing.T) {
	up, ch := newUpstream(t)
	h, _ := newTestHandler(t, up.URL+"/api", &injecting{base: http.DefaultTransport}, nil)
	px := httptest.NewServer(h)
	defer px.Close()
	resp, err := http.Post(px.URL+"/m2m/v1/session/logout", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("/api + /m2m/v1/session/logout: status %d, want 403", resp.StatusCode)
	}
	select {
	case got := <-ch:
		t.Errorf("the logout reached the upstream: %+v", got)
	default:
	}
}
