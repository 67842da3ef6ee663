package thingspace

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

// §2 of the contract: the Connectivity Management (M2M / UWS) session.
//
// Every call carries the app's access token as "Authorization: Bearer"; every call but Login
// also carries the session token in VZ-M2M-Token. The session idles out after 20 minutes without
// use and a successful call resets that clock, so Account serves as the keep-alive.
//
// # Errors
//
// Every error is an *upstream.Error. Its Code is, in this order of precedence:
//   - the M2M errorCode, KEPT WHOLE (prefix included, e.g.
//     "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"), and only when it is a dotted
//     identifier: letters and underscores in two or more segments separated by dots, at most 96
//     characters. UWS passwords cannot contain '.', and session and access tokens are UUIDs
//     (digits, hyphens), so an errorCode echoing any of them never gets through. Keeping the
//     prefix makes every M2M code recognisable by its dots alone (OAuth codes and gateway fault
//     codes have none), and a code with no prefix, or another prefix, is kept as sent;
//   - otherwise the gateway fault code ("900901").
//
// errorMessage and the fault's message and description are never decoded.
//
// Kinds, and the helpers that tell the cases apart:
//   - Transient: network failures, timeouts, 408, 429 and 5xx (with RetryAfter), whatever the
//     body says; also a malformed 2xx answer to Login. No Is* helper is true for these.
//   - Rejected, IsSessionInvalid: a 4xx whose errorCode has a ".SessionToken." segment
//     (SessionToken.Expired, SessionToken.Invalid). Retrying with the same session cannot
//     succeed; drop the session, log in once, retry.
//   - Rejected, IsBearerRejected: a 4xx gateway fault 900901, a wrong or expired access token.
//     Get a new ThingSpace token, retry once. This is not a login failure and says nothing
//     about the UWS credentials.
//   - Rejected, neither helper, on Login: Login answered 400, 401 or 403 with any other M2M
//     errorCode (INPUT_INVALID.Password.Invalid, the undocumented locked-user code, any new code).
//     Do NOT log in again with the same credentials: five failures lock the username.
//   - Rejected, neither helper, not Login: ResetPassword refused the old password (an errorCode with a
//     "Password" segment); a 401 or 403 without an M2M code (gateway fault 900902 "missing
//     credentials", 900908 "forbidden", no body). Which credential is at fault is unknown.
//   - Invalid: 400, 404 or 405 that is none of the above (gateway fault 900906, a body without
//     a usable code, an M2M code on a call it does not concern, such as a bad account name), and
//     arguments refused before sending (status 0).
//   - Unknown: any other status, and a malformed 2xx answer to ResetPassword (see there).

const (
	loginPath         = "/api/m2m/v1/session/login"
	logoutPath        = "/api/m2m/v1/session/logout"
	resetPasswordPath = "/api/m2m/v1/session/password/actions/reset"
	accountsPath      = "/api/m2m/v1/accounts/"

	// M2MTokenHeader carries the session token, spelled as Verizon documents it.
	M2MTokenHeader = "VZ-M2M-Token"

	// Endpoint names given to the Observer and upstream.Error.Endpoint.
	EndpointLogin         = "login"
	EndpointLogout        = "logout"
	EndpointResetPassword = "password_reset"
	EndpointAccount       = "account"

	jsonContentType = "application/json"

	// maxM2MCodeLen bounds an errorCode; upstream.Error prints longer codes as "<invalid code>".
	maxM2MCodeLen = 96
	// maxPasswordBytes bounds a password returned by ResetPassword (Verizon's are 12 characters;
	// the policy allows 32).
	maxPasswordBytes = 128
	// maxAccountNameLen bounds an account name (they look like "0000123456-00001").
	maxAccountNameLen = 64
)

// m2mCodePattern is the shape of an errorCode that may enter upstream.Error.Code.
var m2mCodePattern = regexp.MustCompile(`^[A-Za-z_]+(\.[A-Za-z_]+)+$`)

// parseM2MCode accepts an errorCode only when it is a JSON string shaped like a dotted
// identifier (see the package's M2M error notes); anything else is dropped.
func parseM2MCode(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) > maxM2MCodeLen || !m2mCodePattern.MatchString(s) {
		return ""
	}
	return s
}

// UWSCredentials are a UWS (M2M) username and password. Every way of printing them (fmt verbs,
// JSON, slog, logr) redacts Password; only the body of a login request carries it.
type UWSCredentials struct {
	Username, Password string
}

// Login opens an M2M session with creds and returns its token (a UUID). Each failed login counts
// towards the platform's lockout (five in a row lock the username until Verizon support unlocks
// it), so after a Rejected answer that is not IsBearerRejected, do not try the same credentials again. Check creds with
// ValidateUWS first: Login refuses only what cannot be sent (an empty part, control characters,
// invalid UTF-8), not what breaks the password policy. See the M2M error notes above for the
// error kinds.
func (c *Client) Login(ctx context.Context, appToken string, creds UWSCredentials) (session string, err error) {
	if err := checkHeaderToken(EndpointLogin, "app token", appToken); err != nil {
		return "", err
	}
	if err := creds.validate(EndpointLogin); err != nil {
		return "", err
	}
	body, err := json.Marshal(struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{creds.Username, creds.Password})
	if err != nil {
		return "", upstream.NewError(API, EndpointLogin, 0, upstream.Invalid, "cannot encode credentials", nil)
	}
	resp, err := c.do(ctx, m2mCall(EndpointLogin, http.MethodPost, loginPath, appToken, "", body, true))
	if err != nil {
		return "", err
	}
	var lr struct {
		SessionToken string `json:"sessionToken"`
	}
	if err := json.Unmarshal(resp.Body, &lr); err != nil {
		return "", malformed(EndpointLogin, resp.Status, "not a session object", err)
	}
	if !oauth.IsTokenValue(lr.SessionToken) {
		return "", malformed(EndpointLogin, resp.Status, "sessionToken missing or unusable", nil)
	}
	return lr.SessionToken, nil
}

// Logout ends session. Any 2xx is success; the body (the ended token) is ignored. An error for
// which IsSessionInvalid holds means the session had already ended.
func (c *Client) Logout(ctx context.Context, appToken, session string) error {
	if err := checkSessionArgs(EndpointLogout, appToken, session); err != nil {
		return err
	}
	_, err := c.do(ctx, m2mCall(EndpointLogout, http.MethodPost, logoutPath, appToken, session, nil, false))
	return err
}

// ResetPassword has the platform replace the UWS password with one of its choosing and returns
// it. The new password is in force at once and the old one no longer works, so store it before
// doing anything else. Whether live sessions survive is unknown: expect IsSessionInvalid on the
// next call and log in with the new password.
//
// A lost answer is a lost password. Transient errors (timeouts, a connection cut while reading)
// therefore leave it unknown whether the reset happened; a 2xx whose body holds no usable
// password, which means it did, is Unknown rather than Transient, since no retry can recover
// that password. Either way, check with at most one login using the old password before trying
// anything else (ResetUnanswered tells these cases apart). A refused oldPassword is Rejected (see
// the M2M error notes).
func (c *Client) ResetPassword(ctx context.Context, appToken, session, oldPassword string) (newPassword string, err error) {
	if err := checkSessionArgs(EndpointResetPassword, appToken, session); err != nil {
		return "", err
	}
	if reason := passwordArgProblem(oldPassword); reason != "" {
		return "", upstream.NewError(API, EndpointResetPassword, 0, upstream.Invalid, "old password "+reason, nil)
	}
	body, err := json.Marshal(struct {
		OldPassword string `json:"oldPassword"`
	}{oldPassword})
	if err != nil {
		return "", upstream.NewError(API, EndpointResetPassword, 0, upstream.Invalid, "cannot encode password", nil)
	}
	resp, err := c.do(ctx, m2mCall(EndpointResetPassword, http.MethodPut, resetPasswordPath, appToken, session, body, true))
	if err != nil {
		if ue, ok := errors.AsType[*upstream.Error](err); ok && ue.StatusCode >= 200 && ue.StatusCode < 300 {
			return "", resetLost(ue.StatusCode, err) // 2xx body too large
		}
		return "", err
	}
	var rr struct {
		NewPassword string `json:"newPassword"`
	}
	if err := json.Unmarshal(resp.Body, &rr); err != nil {
		return "", resetLost(resp.Status, err)
	}
	// U+FFFD is what JSON decoding makes of bytes that are not UTF-8: the password as sent is
	// not the one decoded.
	if passwordArgProblem(rr.NewPassword) != "" || len(rr.NewPassword) > maxPasswordBytes ||
		strings.ContainsRune(rr.NewPassword, utf8.RuneError) {
		return "", resetLost(resp.Status, nil)
	}
	return rr.NewPassword, nil
}

// ResetUnanswered reports whether err, from ResetPassword, leaves it unknown whether the platform
// applied the reset: the request was written out in full and no complete answer came back
// (upstream.Error.Unanswered), or a 2xx came back without a readable new password. Such a reset is
// never sent again with the same old password. A failure to connect or to send, and every error
// answer, mean the reset was not applied.
func ResetUnanswered(err error) bool {
	e, ok := errors.AsType[*upstream.Error](err)
	return ok && e.API == API && e.Endpoint == EndpointResetPassword &&
		(e.Unanswered || (e.StatusCode >= 200 && e.StatusCode < 300))
}

// resetLost is the error for a 2xx reset whose new password cannot be read.
func resetLost(status int, cause error) error {
	return upstream.NewError(API, EndpointResetPassword, status, upstream.Unknown,
		"malformed response: newPassword missing or unusable; the password has probably changed", cause)
}

// Account reads the account's information and throws it away: its purpose is to use the
// session so it does not idle out. Any 2xx is success; a bounded part of the body is read and
// discarded. accountName (like "0000123456-00001") must be a plain path segment: letters,
// digits, '-', '_', '.', '~', at most 64 characters.
func (c *Client) Account(ctx context.Context, appToken, session, accountName string) error {
	if err := checkSessionArgs(EndpointAccount, appToken, session); err != nil {
		return err
	}
	if !isPathSegment(accountName) {
		return upstream.NewError(API, EndpointAccount, 0, upstream.Invalid, "account name is empty or not a plain path segment", nil)
	}
	_, err := c.do(ctx, m2mCall(EndpointAccount, http.MethodGet, accountsPath+accountName, appToken, session, nil, false))
	return err
}

func m2mCall(endpoint, method, path, appToken, session string, body []byte, readBody bool) call {
	h := http.Header{"Authorization": {"Bearer " + appToken}}
	if session != "" {
		// Set directly, not through Header.Set, to send Verizon's spelling; HTTP header names are
		// case-insensitive, so either would do.
		h[M2MTokenHeader] = []string{session}
	}
	cl := call{
		endpoint: endpoint,
		method:   method,
		path:     path,
		header:   h,
		body:     body,
		readBody: readBody,
		classify: classifyM2M(endpoint),
	}
	if body != nil {
		cl.contentType = jsonContentType
	}
	return cl
}

// classifyM2M sorts the error responses of the M2M calls; see the M2M error notes above.
func classifyM2M(endpoint string) func(status int, eb errorBody) upstream.Kind {
	return func(status int, eb errorBody) upstream.Kind {
		rejectedStatus := status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden
		switch {
		case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
			return upstream.Transient
		case status < 400:
			return upstream.Unknown // 3xx: redirects are not followed
		case isSessionCode(eb.m2m):
			return upstream.Rejected
		case eb.m2m != "" && endpoint == EndpointLogin && rejectedStatus:
			return upstream.Rejected
		case eb.m2m != "" && endpoint == EndpointResetPassword && rejectedStatus && hasSegment(eb.m2m, "Password"):
			return upstream.Rejected
		case status == http.StatusUnauthorized, status == http.StatusForbidden:
			return upstream.Rejected
		case eb.m2m == "" && (eb.fault == "900901" || eb.fault == "900902"):
			return upstream.Rejected
		case status == http.StatusBadRequest, status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
			return upstream.Invalid
		default:
			return upstream.Unknown
		}
	}
}

func isM2MEndpoint(endpoint string) bool {
	switch endpoint {
	case EndpointLogin, EndpointLogout, EndpointResetPassword, EndpointAccount:
		return true
	}
	return false
}

// m2mErrorOf returns the *upstream.Error in err's chain if it comes from an M2M call of this
// package and is Rejected.
func m2mErrorOf(err error) (*upstream.Error, bool) {
	e, ok := errors.AsType[*upstream.Error](err)
	if !ok || e.API != API || !isM2MEndpoint(e.Endpoint) || e.Kind != upstream.Rejected {
		return nil, false
	}
	return e, true
}

// isSessionCode reports whether code is an M2M code about the session token.
func isSessionCode(code string) bool {
	return m2mCodePattern.MatchString(code) && strings.Contains("."+code, ".SessionToken.")
}

func hasSegment(code, segment string) bool {
	for s := range strings.SplitSeq(code, ".") {
		if s == segment {
			return true
		}
	}
	return false
}

// IsSessionInvalid reports whether an M2M call failed because its session token is expired or
// unknown (a 4xx errorCode with a ".SessionToken." segment). Drop the session, log in once and
// retry.
func IsSessionInvalid(err error) bool {
	e, ok := m2mErrorOf(err)
	return ok && isSessionCode(e.Code)
}

// IsBearerRejected reports whether the gateway refused the ThingSpace access token of an M2M
// call (fault 900901: wrong or expired). Get a new token and retry once. It is never a login
// failure: the UWS credentials were not looked at.
func IsBearerRejected(err error) bool {
	e, ok := m2mErrorOf(err)
	return ok && e.Code == "900901"
}

// checkHeaderToken refuses a token that is empty or cannot be sent as a header value as is.
func checkHeaderToken(endpoint, what, v string) error {
	return oauth.CheckTokenArg(API, endpoint, what, v)
}

func checkSessionArgs(endpoint, appToken, session string) error {
	if err := checkHeaderToken(endpoint, "app token", appToken); err != nil {
		return err
	}
	return checkHeaderToken(endpoint, "session token", session)
}

// passwordArgProblem returns a fixed reason why a password cannot be sent (or was not usable as
// received), or "". It never quotes the password.
func passwordArgProblem(p string) string {
	switch {
	case p == "":
		return "is empty"
	case !utf8.ValidString(p):
		return "is not valid UTF-8"
	case hasControlRune(p):
		return "contains control characters"
	}
	return ""
}

// validate refuses credentials that cannot be what the user meant: sending them would only burn
// one of the five attempts before a lockout. (JSON would replace invalid UTF-8 with U+FFFD.)
func (c UWSCredentials) validate(endpoint string) error {
	var reason string
	switch {
	case c.Username == "":
		reason = "credentials: username is empty"
	case !utf8.ValidString(c.Username) || hasControlRune(c.Username):
		reason = "credentials: username contains control characters or invalid UTF-8"
	default:
		if r := passwordArgProblem(c.Password); r != "" {
			reason = "credentials: password " + r
		}
	}
	if reason == "" {
		return nil
	}
	return upstream.NewError(API, endpoint, 0, upstream.Invalid, reason, nil)
}

func hasControlRune(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// isPathSegment reports whether s can be put into a URL path as is, with no escaping and no
// meaning as a relative path.
func isPathSegment(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > maxAccountNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' && c != '~' {
			return false
		}
	}
	return true
}
