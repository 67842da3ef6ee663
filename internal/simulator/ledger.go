package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The ledger (Config.Ledger, --ledger) is the chaos suite's record of everything the simulator did for
// its clients: every call with its subject (the app key, UWS user or Cloud client it was for), arrival
// and answer, every Retry-After it sent and the calls that came back within one, every password reset
// it applied and every failed login with the password it was tried with (as a hash-free label: the
// caller compares values). It is read over GET /admin/ledger; the values it holds are credentials, so
// the admin endpoints must stay on loopback, as all of them must.

// LedgerCall is one call to /api/... or /cloud/....
type LedgerCall struct {
	At   time.Time `json:"at"`
	Done time.Time `json:"done"`
	// Route is "<METHOD> <route path>", as in Stats.
	Route string `json:"route"`
	// Subject is "ts:<app key>", "m2m:<username>" or "cloud:<client id>"; "" when unknown.
	Subject string `json:"subject"`
	// Status is what the client was answered (499: it gave up; 0: the connection was dropped).
	Status int `json:"status"`
	// RetryAfter is the Retry-After sent with the answer.
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
	// WithinRetryAfter is set when the same subject called the same route before an earlier answer's
	// Retry-After had passed.
	WithinRetryAfter bool `json:"withinRetryAfter,omitempty"`
	// Chaos names an injected answer: "fault", "drop" (applied, connection reset), "hold" (applied,
	// answer held), "reject" (Bearer refused by the switch).
	Chaos string `json:"chaos,omitempty"`
	// Issued lists the credentials the answer carried (tokens, session tokens, refresh tokens).
	Issued []string `json:"issued,omitempty"`
	// Used is the refresh token or password the call presented, when it presented one.
	Used string `json:"used,omitempty"`
}

// LedgerReset is a password reset the simulator applied, answered or not.
type LedgerReset struct {
	At       time.Time `json:"at"`
	User     string    `json:"user"`
	Password string    `json:"password"`
}

// Ledger is what GET /admin/ledger answers.
type Ledger struct {
	Calls  []LedgerCall  `json:"calls"`
	Resets []LedgerReset `json:"resets"`
}

type ledger struct {
	mu       sync.Mutex
	on       bool
	calls    []LedgerCall
	resets   []LedgerReset
	notUntil map[string]time.Time // route+subject -> end of the last Retry-After sent
}

func (l *ledger) enabled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on
}

func (l *ledger) reset(at time.Time, user, password string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.on {
		l.resets = append(l.resets, LedgerReset{At: at, User: user, Password: password})
	}
}

func (l *ledger) snapshot() Ledger {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Ledger{Calls: append([]LedgerCall(nil), l.calls...), Resets: append([]LedgerReset(nil), l.resets...)}
}

// observation is one call being recorded.
type observation struct {
	call LedgerCall
	key  string
	// recorded is set once the call is in the ledger (a drop records before it resets the connection).
	recorded bool
}

// begin reads (and restores) the request body to name the call's subject and what it presented.
func (s *Server) ledgerBegin(r *http.Request, route string) *observation {
	if !s.ledger.enabled() {
		return nil
	}
	o := &observation{call: LedgerCall{At: s.clock.Now(), Route: route}}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, maxFormBytes))
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	user, _, hasBasic := r.BasicAuth()
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/ts/"):
		o.call.Subject = "ts:" + user
	case strings.HasPrefix(r.URL.Path, "/api/m2m/"):
		var b struct {
			Username    string `json:"username"`
			Password    string `json:"password"`
			OldPassword string `json:"oldPassword"`
		}
		ok := json.Unmarshal(body, &b) == nil
		if ok && b.Username != "" {
			o.call.Subject, o.call.Used = "m2m:"+b.Username, b.Password
		} else if u := s.m2m.sessionUser(r.Header.Get(M2MTokenHeader)); u != "" {
			o.call.Subject = "m2m:" + u
			if ok {
				o.call.Used = b.OldPassword // a reset presents the password in force
			}
		}
	case isCloudPath(r.URL.Path):
		form, _ := url.ParseQuery(string(body))
		id := form.Get("client_id")
		if hasBasic {
			id = user
		}
		if id == "" {
			id = r.URL.Query().Get("client_id")
		}
		o.call.Subject = "cloud:" + id
		o.call.Used = form.Get("refresh_token")
	}
	// Retry-After binds the client that was answered: an app key, a UWS user, a Cloud grant (the
	// refresh token it presents; one client id serves many grants).
	o.key = route + " " + o.call.Subject
	if isCloudPath(r.URL.Path) {
		o.key += " " + o.call.Used
	}
	s.ledger.mu.Lock()
	if until, ok := s.ledger.notUntil[o.key]; ok && o.call.At.Before(until) {
		o.call.WithinRetryAfter = true
	}
	s.ledger.mu.Unlock()
	return o
}

// end records the answer rec carried, once.
func (s *Server) ledgerEnd(o *observation, rec *statusRecorder) {
	if o == nil || o.recorded {
		return
	}
	o.recorded = true
	o.call.Done = s.clock.Now()
	o.call.Status = rec.statusOrOK()
	if rec.dropped {
		o.call.Status = 0
	}
	o.call.Chaos = rec.chaos
	if ra := rec.Header().Get("Retry-After"); ra != "" {
		if d, err := time.ParseDuration(ra + "s"); err == nil {
			o.call.RetryAfter = d
		}
	}
	var b struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		SessionToken string `json:"sessionToken"`
		NewPassword  string `json:"newPassword"`
	}
	if rec.body != nil && json.Unmarshal(rec.body.Bytes(), &b) == nil {
		for _, v := range []string{b.AccessToken, b.RefreshToken, b.SessionToken, b.NewPassword} {
			if v != "" {
				o.call.Issued = append(o.call.Issued, v)
			}
		}
	}
	s.ledger.mu.Lock()
	defer s.ledger.mu.Unlock()
	if o.call.RetryAfter > 0 {
		if s.ledger.notUntil == nil {
			s.ledger.notUntil = map[string]time.Time{}
		}
		s.ledger.notUntil[o.key] = o.call.Done.Add(o.call.RetryAfter)
	}
	s.ledger.calls = append(s.ledger.calls, o.call)
}

// Live reports, for each value, whether it is a credential the simulator would accept now: a live
// ThingSpace token, a live M2M session token, a live Verizon Cloud access token or an unrotated,
// unexpired refresh token.
func (s *Server) Live(values []string) []bool {
	out := make([]bool, len(values))
	for i, v := range values {
		out[i] = v != "" && (s.ts.valid(v) || s.m2m.sessionLive(v) || s.cloud.liveAccess(v) != nil || s.cloud.liveRefresh(v))
	}
	return out
}

// Ledger returns what the ledger recorded; empty unless Config.Ledger is set.
func (s *Server) Ledger() Ledger { return s.ledger.snapshot() }

func (m *m2m) sessionUser(token string) string {
	if token == "" {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if sess := m.sessions[token]; sess != nil {
		return sess.user
	}
	return ""
}

func (m *m2m) sessionLive(token string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.liveLocked(token) != nil
}

func (c *cloud) liveRefresh(token string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rt := c.refresh[token]
	return rt != nil && !rt.rotated && !rt.grant.revoked && c.clock.Now().Before(rt.expires)
}

func (s *Server) registerLedgerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/ledger", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Ledger())
	})
	mux.HandleFunc("POST /admin/ledger/live", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Values []string `json:"values"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
		if err := dec.Decode(&body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string][]bool{"live": s.Live(body.Values)})
	})
	mux.HandleFunc("PUT /admin/chaos", func(w http.ResponseWriter, r *http.Request) {
		var c Chaos
		if err := decodeAdminJSON(w, r, &c); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := c.Validate(); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetChaos(c)
		w.WriteHeader(http.StatusNoContent)
	})
}
