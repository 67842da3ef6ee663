package simulator

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// DefaultTokenLifetime is ThingSpace's documented token lifetime ("one hour
// from when it was first issued").
const DefaultTokenLifetime = time.Hour

// statusClientClosed is counted when the client gives up while the request is
// held by injected latency, so no real status was ever sent (nginx's 499).
const statusClientClosed = 499

// Config configures a Server. The zero value is usable: no apps, 1h tokens,
// no faults, real clock, no M2M users, 20m M2M idle timeout, no Verizon Cloud
// clients, Cloud lifetimes of 1h (access), 14d (refresh) and 5m (code).
type Config struct {
	// Apps maps ThingSpace app key to app secret.
	Apps map[string]string
	// TokenLifetime of an access token from first issue; 0 means 1h.
	TokenLifetime time.Duration
	// ExpiryGrace keeps a ThingSpace token live this long past its lifetime:
	// token requests of its app get it again with expires_in 0 ("expired
	// now") and it still works as a Bearer. It models a gateway whose clock
	// or rounding lags the client's, so the client's refresh at expiry meets
	// the old token (issue 8 scenario 12). 0 (the default) means none; the
	// last second of a lifetime answers expires_in 0 anyway (rounded down).
	ExpiryGrace time.Duration
	// Faults injected on /api/... requests; see Faults.
	Faults Faults
	// Clock drives token expiry and injected latency; nil means the real clock.
	Clock clock.Clock

	// M2MUsers maps UWS username to password (§2); copied by New.
	M2MUsers map[string]string
	// M2MIdleTimeout ends an M2M session this long after its last successful
	// use; 0 means DefaultM2MIdleTimeout (20m).
	M2MIdleTimeout time.Duration
	// M2MLockedCode is the errorCode of a locked user's login; "" means
	// DefaultM2MLockedCode. The real code is unknown.
	M2MLockedCode string
	// ResetEndsSessions makes a password reset end every session of the user,
	// the resetting one included. Whether Verizon does is unknown.
	ResetEndsSessions bool
	// M2MSessionTiedToBearer ties each M2M session to the access token that
	// logged in: it then works only with that Bearer and ends when that token
	// expires or is revoked (m2m_tied.go). Whether Verizon does is unknown;
	// off, a session works with any live Bearer.
	M2MSessionTiedToBearer bool

	// CloudApps maps Verizon Cloud client id to its secret and registered
	// callback URL (§3); copied by New.
	CloudApps map[string]CloudApp
	// CloudAccessTokenLifetime, CloudRefreshTokenLifetime (from each refresh
	// token's own issue) and CloudCodeLifetime; 0 means the Default... value.
	CloudAccessTokenLifetime  time.Duration
	CloudRefreshTokenLifetime time.Duration
	CloudCodeLifetime         time.Duration
	// CloudDenyConsent makes authorize redirect with error=access_denied, as
	// a person refusing consent would.
	CloudDenyConsent bool
	// CloudTokenResponseDelay holds every Cloud token response this long
	// after the request has been processed (a refresh already rotated): the
	// worst case for a client that dies or times out mid-refresh.
	CloudTokenResponseDelay time.Duration
	// Ledger records every call, issued credential and applied reset for GET /admin/ledger (the chaos
	// suite's evidence; see ledger.go).
	Ledger bool
}

// Server simulates the ThingSpace and Verizon Cloud APIs. It is safe for
// concurrent use.
type Server struct {
	clock clock.Clock
	mux   *http.ServeMux
	ts    *tsOAuth
	m2m   *m2m
	cloud *cloud

	mu     sync.Mutex // guards faults, chaos and stats
	faults Faults
	chaos  Chaos
	stats  map[string]map[int]int // route key -> status -> count
	ledger ledger
}

// New returns a Server configured by cfg. Its maps are copied.
func New(cfg Config) *Server {
	clk := cfg.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	lifetime := cfg.TokenLifetime
	if lifetime <= 0 {
		lifetime = DefaultTokenLifetime
	}
	s := &Server{
		clock:  clk,
		mux:    http.NewServeMux(),
		ts:     newTSOAuth(clk, lifetime, cfg.ExpiryGrace, cfg.Apps),
		faults: cfg.Faults.sanitized(),
		stats:  map[string]map[int]int{},
	}

	// One register call per API family, each with its own file and state.
	s.ledger.on = cfg.Ledger
	s.m2m = newM2M(clk, s.ValidBearer, cfg)
	s.m2m.onReset = s.ledger.reset
	s.cloud = newCloud(clk, s.respondLate, cfg)
	s.ts.register(s.mux)
	s.m2m.register(s.mux)
	s.cloud.register(s.mux)
	s.registerAdmin(s.mux)
	s.registerM2MAdmin(s.mux)
	s.registerM2MTiedAdmin(s.mux)
	s.registerCloudAdmin(s.mux)
	s.registerLedgerAdmin(s.mux)

	// Anything else under /api/ is the gateway's "no such resource", which the
	// contract documents as 400 900906. The catch-all also keeps stats keys
	// bounded: unknown paths count under "<METHOD> /api/" rather than one key
	// per path.
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeGatewayFault(w, http.StatusBadRequest, "900906",
			"No matching resource found in the API for the given request",
			"Access failure for API: "+r.URL.Path+", method "+r.Method)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	return s
}

// ServeHTTP applies latency and fault injection to /api/... and /cloud/...
// requests, counts every non-admin request by route and status, and
// dispatches to the mux.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isAdminPath(r.URL.Path) {
		// Admin traffic is the test harness talking to us, not the client under
		// test, so it is neither faulted nor counted.
		s.mux.ServeHTTP(w, r)
		return
	}

	// The route is resolved up front because faulted requests never reach the
	// mux, yet must be counted under the route they were aimed at.
	_, pattern := s.mux.Handler(r)
	rec := &statusRecorder{ResponseWriter: w}
	route := routeKey(r.Method, pattern)
	obs := s.ledgerBegin(r, route)
	if obs != nil {
		rec.body = &bytes.Buffer{}
	}
	defer func() {
		s.count(route, rec.statusOrOK())
		s.ledgerEnd(obs, rec)
	}()

	if isFaultablePath(r.URL.Path) {
		f := s.Faults()
		if err := s.sleep(r.Context(), f.Latency); err != nil {
			rec.status = statusClientClosed
			return
		}
		if f.roll() {
			rec.chaos = "fault"
			writeInjectedFault(rec, f, r.URL.Path)
			return
		}
		if s.serveChaos(rec, r, obs) {
			return
		}
	}
	s.mux.ServeHTTP(rec, r)
}

// sleep waits d on the server clock, so fake-clock tests control latency too.
func (s *Server) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// respondLate runs h to completion, then holds what it wrote for d on the
// server clock before sending it. If the client gives up meanwhile nothing is
// sent and the request counts as 499, but whatever h did stays done.
func (s *Server) respondLate(w http.ResponseWriter, r *http.Request, d time.Duration, h http.HandlerFunc) {
	held := &heldResponse{header: http.Header{}}
	h(held, r)
	if err := s.sleep(r.Context(), d); err != nil {
		if rec, ok := w.(*statusRecorder); ok {
			rec.status = statusClientClosed
			if rec.body != nil {
				rec.body.Write(held.body.Bytes()) // the ledger learns what was issued and never delivered
			}
		}
		return
	}
	maps.Copy(w.Header(), held.header)
	w.WriteHeader(cmp.Or(held.status, http.StatusOK))
	_, _ = w.Write(held.body.Bytes()) // a write error is a gone client: nobody to tell
}

// heldResponse buffers a handler's response for respondLate.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldResponse) Write(b []byte) (int, error) { return h.body.Write(b) }

// Faults returns the faults currently injected.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetFaults replaces the injected faults. Status 0 means 503; values that
// Faults.Validate rejects are clamped (see Faults.Validate).
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f.sanitized()
}

// SetApp adds an app or changes its secret. Changing the secret ends the app's
// live token, as regenerating a secret in Key Management would.
func (s *Server) SetApp(key, secret string) { s.ts.setApp(key, secret) }

// RemoveApp deletes an app and ends its live token. Unknown keys are ignored.
func (s *Server) RemoveApp(key string) { s.ts.removeApp(key) }

// SetExpiryGrace changes Config.ExpiryGrace; it applies to live tokens too.
func (s *Server) SetExpiryGrace(d time.Duration) { s.ts.setGrace(d) }

// ValidBearer reports whether token is a live ThingSpace access token: issued
// by this server, not expired, not revoked, and its app still exists. Gateway
// endpoints use it to decide on 401 900901.
func (s *Server) ValidBearer(token string) bool { return s.ts.valid(token) }

func isAdminPath(p string) bool {
	return p == "/admin" || strings.HasPrefix(p, "/admin/") || p == "/healthz"
}

// isFaultablePath: the contract puts gateway faults on every /api/... path,
// and lists 429 and 503 among Verizon Cloud's errors.
func isFaultablePath(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") || isCloudPath(p)
}

func isCloudPath(p string) bool {
	return p == "/cloud" || strings.HasPrefix(p, "/cloud/")
}

// routeKey renders "<METHOD> <route path>" from a mux pattern, which may or
// may not start with a method.
func routeKey(method, pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern == "" {
		pattern = "(unmatched)"
	}
	return method + " " + pattern
}

// statusRecorder remembers the status a handler sent so it can be counted.
type statusRecorder struct {
	http.ResponseWriter
	status int
	// body, when not nil, gets a copy of what was written (for the ledger).
	body *bytes.Buffer
	// chaos names an injected answer; dropped is set when the connection was reset instead.
	chaos   string
	dropped bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body != nil {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) statusOrOK() int {
	if r.status == 0 {
		return http.StatusOK // net/http sends 200 for a handler that wrote nothing
	}
	return r.status
}
