package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"
)

// Header names the proxy alone sets upstream (through the credentials transport).
const (
	headerAuthorization = "Authorization"
	headerM2MToken      = "VZ-M2M-Token"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Upstream is the one base URL every request goes to (scheme, host, optional path prefix).
	Upstream *url.URL
	// Transport sends the rewritten request; in the sidecar a pkg/credentials.Transport, which
	// sets the credential headers and retries once when the upstream rejects the credential.
	Transport http.RoundTripper
	// Timeout bounds each request upstream, its retry and any wait for a newer credential
	// included; 0 means none beyond the client's.
	Timeout time.Duration
	// NoCredential reports whether a transport error means that no valid credential is held
	// (answered 503 rather than 502); nil means never.
	NoCredential func(error) bool
	Metrics      *Metrics
	Logger       *slog.Logger
}

// Handler is the one-upstream reverse proxy.
type Handler struct {
	o  HandlerOptions
	rp *httputil.ReverseProxy
}

// CheckUpstream returns an error unless u is an absolute http(s) URL with a host and nothing the
// proxy would silently drop (user info, query, fragment); plain http only with allowInsecure.
func CheckUpstream(u *url.URL, allowInsecure bool) error {
	switch {
	case u == nil || u.Host == "" || u.Opaque != "":
		return errors.New("upstream must be an absolute URL such as https://thingspace.verizon.com")
	case u.Scheme == "http" && !allowInsecure:
		return errors.New("upstream is plain http: credentials would cross the network in clear text (--allow-insecure-upstream is for tests)")
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("upstream scheme %q: want https", u.Scheme)
	case u.User != nil:
		return errors.New("upstream must not carry user info")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("upstream must not carry a query or fragment")
	}
	return nil
}

// NewHandler returns the reverse proxy. The upstream must pass CheckUpstream (insecure allowed).
func NewHandler(o HandlerOptions) (*Handler, error) {
	if err := CheckUpstream(o.Upstream, true); err != nil {
		return nil, err
	}
	if o.Transport == nil || o.Metrics == nil {
		return nil, errors.New("proxy: Transport and Metrics are required")
	}
	o.Logger = orDiscard(o.Logger)
	h := &Handler{o: o}
	h.rp = &httputil.ReverseProxy{
		// Rewrite (not Director): the inbound Forwarded/X-Forwarded-* headers are dropped and
		// none are added, so nothing about the pod travels upstream.
		Rewrite: func(pr *httputil.ProxyRequest) {
			// SetURL takes scheme and host from the upstream whatever the request said: an
			// absolute-URI request ("GET http://elsewhere/x") still goes to the upstream only.
			pr.SetURL(o.Upstream)
			// The transport is the only one setting these.
			pr.Out.Header.Del(headerAuthorization)
			pr.Out.Header.Del(headerM2MToken)
		},
		Transport:    o.Transport,
		ErrorHandler: h.fail,
		ErrorLog:     slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return h, nil
}

// ServeHTTP refuses CONNECT and the M2M session's logout and password reset, and forwards
// everything else to the upstream. Bodies stream through; the transport keeps a copy of a short
// one so that it can send it again.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, source: SourceUpstream, count: h.o.Metrics.request}
	defer rec.finish()

	if r.Method == http.MethodConnect {
		h.o.Metrics.refuse("connect")
		rec.source = SourceProxy
		http.Error(rec, "thingspace-proxy forwards to its one upstream only: CONNECT is refused", http.StatusMethodNotAllowed)
		return
	}
	if isSessionManagement(path.Join("/", h.o.Upstream.Path, r.URL.Path)) {
		h.o.Metrics.refuse("session_management")
		rec.source = SourceProxy
		http.Error(rec, "thingspace-proxy: the operator manages the M2M session: logout and password reset are refused", http.StatusForbidden)
		return
	}
	if h.o.Timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), h.o.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	h.rp.ServeHTTP(rec, r)
}

// sessionManagementPaths end or change the credential the proxy injects for every workload of the
// pod (and every other holder of the operator's session): a logout kills the session, a password
// reset changes the UWS password behind the operator's back.
var sessionManagementPaths = []string{"/api/m2m/v1/session/logout", "/api/m2m/v1/session/password"}

// isSessionManagement reports whether the upstream path (the upstream's prefix joined with the
// request's decoded path) is one of sessionManagementPaths or under one, whatever its case,
// repeated slashes, dot segments or path parameters.
func isSessionManagement(p string) bool {
	p, _, _ = strings.Cut(p, ";") // path parameters, which some servers drop
	clean := strings.ToLower(path.Clean("/" + p))
	for _, m := range sessionManagementPaths {
		if clean == m || strings.HasPrefix(clean, m+"/") {
			return true
		}
	}
	return false
}

// fail answers a request the transport could not complete. The error is logged without the
// request's headers or body (the transport's errors carry neither).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.source = SourceProxy
	}
	status, msg := http.StatusBadGateway, "upstream unreachable"
	switch {
	case h.o.NoCredential != nil && h.o.NoCredential(err):
		status, msg = http.StatusServiceUnavailable, "no valid credential held"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusGatewayTimeout, "upstream timed out"
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads the answer.
		status, msg = 499, "client closed the request"
	}
	h.o.Logger.Warn("request not forwarded", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	if status == 499 {
		w.WriteHeader(status)
		return
	}
	http.Error(w, "thingspace-proxy: "+msg, status)
}

// recorder counts the answer by its status and who chose it, when the status is written: before the
// client can see it, so a client that has its answer also finds it counted.
type recorder struct {
	http.ResponseWriter
	source  string
	count   func(code int, source string)
	counted bool
}

func (r *recorder) WriteHeader(code int) {
	// 1xx answers (100 Continue, 103 Early Hints) come before the final one; 101 is final.
	if !r.counted && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.counted = true
		r.count(code, r.source)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.counted {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack on the real writer (ReverseProxy
// streams and upgrades through it).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// finish counts an answer whose handler wrote nothing (net/http sends 200).
func (r *recorder) finish() {
	if !r.counted {
		r.counted = true
		r.count(http.StatusOK, r.source)
	}
}
