package simulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// §2 of the contract: the Connectivity Management (M2M / UWS) session: login,
// logout, password reset and a read-only keep-alive call. Every route sits
// behind the gateway's Bearer check (a live §1 access token); every route but
// login also needs a live session in VZ-M2M-Token.

const (
	m2mLoginPath   = "/api/m2m/v1/session/login"
	m2mLogoutPath  = "/api/m2m/v1/session/logout"
	m2mResetPath   = "/api/m2m/v1/session/password/actions/reset"
	m2mAccountPath = "/api/m2m/v1/accounts/{accountName}"

	// M2MTokenHeader carries the session token on every call after login.
	M2MTokenHeader = "VZ-M2M-Token"

	// DefaultM2MIdleTimeout is the documented session lifetime: "expire after
	// 20 minutes of inactivity".
	DefaultM2MIdleTimeout = 20 * time.Minute

	// M2MLockoutThreshold is the documented number of consecutive failed
	// logins that locks a user.
	M2MLockoutThreshold = 5

	// DefaultM2MLockedCode is the errorCode a locked user's login gets. The
	// real code is unknown ([guess]), hence Config.M2MLockedCode.
	DefaultM2MLockedCode = "UnifiedWebService.REQUEST_FAILED.UserLocked"

	// The M2M error codes the contract names ([seen]).
	m2mCodeSessionInvalid  = "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"
	m2mCodeSessionExpired  = "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
	m2mCodePasswordInvalid = "UnifiedWebService.INPUT_INVALID.Password.Invalid"
	// m2mCodeBodyInvalid answers a body that is not the documented JSON
	// object; the real code is not known.
	m2mCodeBodyInvalid = "UnifiedWebService.INPUT_INVALID.RequestBody.Invalid"

	// m2mPasswordLen and m2mPasswordAlphabet shape reset passwords like the
	// documented example "Wh0a1545a84d".
	m2mPasswordLen      = 12
	m2mPasswordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

	// m2mTombstoneTTL is how long an idle-expired session keeps answering
	// SessionToken.Expired (rather than .Invalid) before it is forgotten, and
	// m2mSweepEvery how often (on the server clock) logins sweep them.
	m2mTombstoneTTL = time.Hour
	m2mSweepEvery   = time.Minute
)

// M2MUserInfo is the state of one simulated UWS user, for tests and the admin
// API. Password is included on purpose: after a reset the harness has no
// other way to learn it.
type M2MUserInfo struct {
	Locked              bool   `json:"locked"`
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	Logins              int    `json:"logins"`
	Password            string `json:"password"`
	ActiveSessions      int    `json:"activeSessions"`
}

type m2mUser struct {
	password string
	failures int // consecutive failed logins
	locked   bool
	logins   int // successful logins
}

type m2mSession struct {
	token    string
	user     string
	lastUsed time.Time
	// expired marks a tombstone: the session idled out (or was expired by the
	// admin API) and now only answers SessionToken.Expired.
	expired   bool
	expiredAt time.Time
	// bearer is the access token the session logged in with (see m2m_tied.go).
	bearer string
}

// m2m holds §2 state.
type m2m struct {
	clock             clock.PassiveClock
	validBearer       func(string) bool
	idle              time.Duration
	lockedCode        string
	resetEndsSessions bool
	// onReset, when set, hears of every reset applied (the ledger), under mu.
	onReset func(at time.Time, user, password string)

	mu sync.Mutex
	// rejectBearers makes the gateway refuse every Bearer on the M2M routes (a key whose tokens the
	// gateway will not take there), however fresh the token.
	rejectBearers bool
	// resetDelay holds every password-reset answer this long after the reset has been applied: the worst
	// case for a client that stops while waiting for its new password.
	resetDelay time.Duration
	// resetAnswer says what becomes of a reset's answer once the reset has been applied.
	resetAnswer M2MResetAnswer
	// tied ties each session to the Bearer that logged in (m2m_tied.go).
	tied      bool
	users     map[string]*m2mUser
	sessions  map[string]*m2mSession // token -> session, tombstones included
	lastSweep time.Time
}

func newM2M(clk clock.PassiveClock, validBearer func(string) bool, cfg Config) *m2m {
	m := &m2m{
		clock:             clk,
		validBearer:       validBearer,
		idle:              cfg.M2MIdleTimeout,
		lockedCode:        cfg.M2MLockedCode,
		resetEndsSessions: cfg.ResetEndsSessions,
		tied:              cfg.M2MSessionTiedToBearer,
		users:             make(map[string]*m2mUser, len(cfg.M2MUsers)),
		sessions:          map[string]*m2mSession{},
	}
	if m.idle <= 0 {
		m.idle = DefaultM2MIdleTimeout
	}
	if m.lockedCode == "" {
		m.lockedCode = DefaultM2MLockedCode
	}
	for name, pw := range cfg.M2MUsers {
		m.users[name] = &m2mUser{password: pw}
	}
	return m
}

func (m *m2m) register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+m2mLoginPath, m.handleLogin)
	mux.HandleFunc("POST "+m2mLogoutPath, m.handleLogout)
	mux.HandleFunc("PUT "+m2mResetPath, m.handleReset)
	mux.HandleFunc("GET "+m2mAccountPath, m.handleAccount)
}

// m2mError is the M2M service's error body.
type m2mError struct {
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

func writeM2MError(w http.ResponseWriter, code, message string) {
	// [doc] M2M errors are HTTP 400, whatever the code.
	writeJSON(w, http.StatusBadRequest, m2mError{ErrorCode: code, ErrorMessage: message})
}

// gateway writes the gateway's 401 fault and returns false unless the request
// carries a live ThingSpace access token as a Bearer.
func (m *m2m) gateway(w http.ResponseWriter, r *http.Request) bool {
	token := bearerOf(r)
	if token == "" {
		writeGatewayFault(w, http.StatusUnauthorized, "900902", "Missing Credentials",
			"Required OAuth credentials not provided. Make sure your API invocation call has a header: 'Authorization: Bearer ACCESS_TOKEN'")
		return false
	}
	m.mu.Lock()
	reject := m.rejectBearers
	m.mu.Unlock()
	if reject || !m.validBearer(token) {
		writeGatewayFault(w, http.StatusUnauthorized, "900901", "Invalid Credentials",
			"Access failure for API: "+r.URL.Path+". Make sure you have given the correct access token")
		return false
	}
	return true
}

// bearerOf returns the request's Bearer token, "" when it carries none.
func bearerOf(r *http.Request) string {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticated runs the checks every session call shares, in the platform's order: the gateway's
// Bearer check, then the session header. It has answered the request when it returns nil.
func (m *m2m) authenticated(w http.ResponseWriter, r *http.Request) *m2mSession {
	if !m.gateway(w, r) {
		return nil
	}
	return m.session(w, r)
}

// session writes the M2M error and returns nil unless VZ-M2M-Token names a
// live session (that, when tied, the request's Bearer may use). It does not
// refresh the idle timer: only success does.
func (m *m2m) session(w http.ResponseWriter, r *http.Request) *m2mSession {
	token := r.Header.Get(M2MTokenHeader)
	m.mu.Lock()
	defer m.mu.Unlock()
	sess := m.liveLocked(token)
	switch {
	case sess != nil && !m.bearerFitsLocked(sess, bearerOf(r)):
		writeM2MError(w, m2mCodeSessionInvalid, "Session token is not valid with this access token.")
		return nil
	case sess != nil:
		return sess
	case token != "" && m.sessions[token] != nil: // a tombstone
		writeM2MError(w, m2mCodeSessionExpired, "Session token is expired.")
	default:
		writeM2MError(w, m2mCodeSessionInvalid, "Session token is invalid.")
	}
	return nil
}

// liveLocked returns the live session for token, turning it into a tombstone
// if it has idled out. Expiry is lazy, as for access tokens.
func (m *m2m) liveLocked(token string) *m2mSession {
	sess := m.sessions[token]
	if sess == nil || sess.expired {
		return nil
	}
	now := m.clock.Now()
	if !now.Before(sess.lastUsed.Add(m.idle)) {
		sess.expired, sess.expiredAt = true, sess.lastUsed.Add(m.idle)
		return nil
	}
	if m.bearerDeadLocked(sess) {
		sess.expired, sess.expiredAt = true, now
		return nil
	}
	return sess
}

// touchLocked refreshes the idle timer of sess if it is still the live
// session (a concurrent logout or reset may have ended it).
func (m *m2m) touchLocked(sess *m2mSession) bool {
	if m.sessions[sess.token] != sess || sess.expired {
		return false
	}
	sess.lastUsed = m.clock.Now()
	return true
}

func decodeM2MBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err := dec.Decode(v); err != nil {
		writeM2MError(w, m2mCodeBodyInvalid, "Request body is not valid.")
		return false
	}
	return true
}

func (m *m2m) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !m.gateway(w, r) {
		return
	}
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if !decodeM2MBody(w, r, &body) {
		return
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[body.Username]
	switch {
	case u == nil:
		// Same answer as a wrong password: no user enumeration.
		writeM2MError(w, m2mCodePasswordInvalid, "Invalid username or password.")
		return
	case u.locked:
		// [doc] locked until support unlocks it, right password or not.
		writeM2MError(w, m.lockedCode, "User is locked.")
		return
	case subtle.ConstantTimeCompare([]byte(body.Password), []byte(u.password)) != 1:
		u.failures++
		if u.failures >= M2MLockoutThreshold {
			u.locked = true
		}
		writeM2MError(w, m2mCodePasswordInvalid, "Invalid username or password.")
		return
	}
	u.failures = 0
	u.logins++
	now := m.clock.Now()
	m.sweepLocked(now)
	sess := &m2mSession{token: newTokenValue(), user: body.Username, lastUsed: now, bearer: bearerOf(r)}
	m.sessions[sess.token] = sess
	writeJSON(w, http.StatusOK, map[string]string{"sessionToken": sess.token})
}

// sweepLocked forgets tombstones older than m2mTombstoneTTL and marks idle
// sessions, at most once per m2mSweepEvery, so the map stays bounded.
func (m *m2m) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < m2mSweepEvery {
		return
	}
	m.lastSweep = now
	for token := range m.sessions {
		m.liveLocked(token)
		if s := m.sessions[token]; s.expired && now.Sub(s.expiredAt) >= m2mTombstoneTTL {
			delete(m.sessions, token)
		}
	}
}

func (m *m2m) handleLogout(w http.ResponseWriter, r *http.Request) {
	sess := m.authenticated(w, r)
	if sess == nil {
		return
	}
	m.mu.Lock()
	live := m.sessions[sess.token] == sess && !sess.expired
	if live {
		delete(m.sessions, sess.token) // ended: from now on .Invalid, not .Expired
	}
	m.mu.Unlock()
	if !live { // a concurrent logout or reset got there first
		writeM2MError(w, m2mCodeSessionInvalid, "Session token is invalid.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"sessionToken": sess.token})
}

func (m *m2m) handleAccount(w http.ResponseWriter, r *http.Request) {
	sess := m.authenticated(w, r)
	if sess == nil {
		return
	}
	m.mu.Lock()
	ok := m.touchLocked(sess)
	m.mu.Unlock()
	if !ok {
		writeM2MError(w, m2mCodeSessionInvalid, "Session token is invalid.")
		return
	}
	name := r.PathValue("accountName")
	number, _, _ := strings.Cut(name, "-") // "0000123456-00001" -> "0000123456"
	writeJSON(w, http.StatusOK, map[string]any{
		"accountName":           name,
		"accountNumber":         number,
		"organizationName":      "Simulated Organization",
		"isProvisioningAllowed": true,
	})
}

// newM2MPassword returns 12 random letters and digits with at least one upper
// case letter, one lower case letter and one digit, like "Wh0a1545a84d".
func newM2MPassword() string {
	for {
		b := make([]byte, m2mPasswordLen)
		for i := range b {
			b[i] = m2mPasswordAlphabet[randIntn(len(m2mPasswordAlphabet))]
		}
		s := string(b)
		if strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(s, "0123456789") {
			return s
		}
	}
}

// randIntn returns a uniform crypto/rand integer in [0, n) for small n.
func randIntn(n int) int {
	limit := 256 - 256%n // reject the biased tail
	var b [1]byte
	for {
		_, _ = rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}
