package thingspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/internal/upstream"
)

const (
	testUWSUser = "uws-machine"
	// testUWSPass has no '.', like every valid UWS password.
	testUWSPass = "Pw0rd-Hunter2x"
	testSession = "bcce3ea6-fe4f-4952-bacf-eadd80718e83"
	testNewPass = "Wh0a1545a84d"
	testAcct    = "0000123456-00001"

	codeExpired  = "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
	codeInvalid  = "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"
	codePassword = "UnifiedWebService.INPUT_INVALID.Password.Invalid"
	codeLocked   = "UnifiedWebService.REQUEST_FAILED.UserLocked"
)

var testUWS = UWSCredentials{Username: testUWSUser, Password: testUWSPass}

// m2mCalls runs each M2M call with the test values; results are the string a call returns.
var m2mCalls = []struct {
	endpoint string
	call     func(c *Client, t *testing.T) (string, error)
}{
	{EndpointLogin, func(c *Client, t *testing.T) (string, error) { return c.Login(t.Context(), testToken, testUWS) }},
	{EndpointLogout, func(c *Client, t *testing.T) (string, error) {
		return "", c.Logout(t.Context(), testToken, testSession)
	}},
	{EndpointResetPassword, func(c *Client, t *testing.T) (string, error) {
		return c.ResetPassword(t.Context(), testToken, testSession, testUWSPass)
	}},
	{EndpointAccount, func(c *Client, t *testing.T) (string, error) {
		return "", c.Account(t.Context(), testToken, testSession, testAcct)
	}},
}

// m2mSeen is what the fake server received.
type m2mSeen struct {
	method, path, authorization, session, contentType string
	hasSession                                        bool
	body                                              []byte
}

func m2mCapture(seen *m2mSeen, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, has := r.Header["Vz-M2m-Token"]
		*seen = m2mSeen{
			method:        r.Method,
			path:          r.URL.Path,
			authorization: r.Header.Get("Authorization"),
			session:       r.Header.Get("VZ-M2M-Token"),
			hasSession:    has,
			contentType:   r.Header.Get("Content-Type"),
			body:          b,
		}
		next(w, r)
	}
}

func TestM2MRequests(t *testing.T) {
	tests := []struct {
		name        string
		prefix      string // base URL path prefix
		handler     http.HandlerFunc
		call        func(c *Client, t *testing.T) (string, error)
		wantMethod  string
		wantPath    string
		wantSession bool
		wantBody    map[string]string // nil: no body and no Content-Type
		wantResult  string
		wantObs     string
	}{
		{
			name:       "login",
			handler:    respond(200, `{"sessionToken":"`+testSession+`"}`),
			call:       m2mCalls[0].call,
			wantMethod: "POST", wantPath: "/api/m2m/v1/session/login",
			wantBody:   map[string]string{"username": testUWSUser, "password": testUWSPass},
			wantResult: testSession, wantObs: "login 200",
		},
		{
			name:    "login sends JSON-special characters intact",
			handler: respond(200, `{"sessionToken":"`+testSession+`","expiresIn":1200}`),
			call: func(c *Client, t *testing.T) (string, error) {
				return c.Login(t.Context(), testToken, UWSCredentials{Username: "u\"ser", Password: `a<b>&c"d\e/f.g é`})
			},
			wantMethod: "POST", wantPath: "/api/m2m/v1/session/login",
			wantBody:   map[string]string{"username": "u\"ser", "password": `a<b>&c"d\e/f.g é`},
			wantResult: testSession, wantObs: "login 200",
		},
		{
			name:       "login behind a path prefix",
			prefix:     "/proxy",
			handler:    respond(200, `{"sessionToken":"`+testSession+`"}`),
			call:       m2mCalls[0].call,
			wantMethod: "POST", wantPath: "/proxy/api/m2m/v1/session/login",
			wantBody:   map[string]string{"username": testUWSUser, "password": testUWSPass},
			wantResult: testSession, wantObs: "login 200",
		},
		{
			name:       "logout",
			handler:    respond(200, `{"sessionToken":"`+testSession+`"}`),
			call:       m2mCalls[1].call,
			wantMethod: "POST", wantPath: "/api/m2m/v1/session/logout", wantSession: true,
			wantObs: "logout 200",
		},
		{
			name:       "logout 204, no body",
			handler:    respond(204, ""),
			call:       m2mCalls[1].call,
			wantMethod: "POST", wantPath: "/api/m2m/v1/session/logout", wantSession: true,
			wantObs: "logout 204",
		},
		{
			name:       "password reset",
			handler:    respond(200, `{"newPassword":"`+testNewPass+`"}`),
			call:       m2mCalls[2].call,
			wantMethod: "PUT", wantPath: "/api/m2m/v1/session/password/actions/reset", wantSession: true,
			wantBody:   map[string]string{"oldPassword": testUWSPass},
			wantResult: testNewPass, wantObs: "password_reset 200",
		},
		{
			name:       "account",
			handler:    respond(200, `{"accountName":"`+testAcct+`","accountNumber":"0000123456"}`),
			call:       m2mCalls[3].call,
			wantMethod: "GET", wantPath: "/api/m2m/v1/accounts/" + testAcct, wantSession: true,
			wantObs: "account 200",
		},
		{
			name:       "account: any body is fine, even a huge one",
			handler:    respond(200, "<html>"+strings.Repeat("x", 4*int(upstream.DefaultBodyLimit))),
			call:       m2mCalls[3].call,
			wantMethod: "GET", wantPath: "/api/m2m/v1/accounts/" + testAcct, wantSession: true,
			wantObs: "account 200",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen m2mSeen
			srv := newServer(t, m2mCapture(&seen, tt.handler))
			c, rec := newTestClient(t, srv)
			if tt.prefix != "" {
				var err error
				if c, err = New(srv.URL+tt.prefix, srv.Client(), WithObserver(rec.Observe)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tt.call(c, t)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if got != tt.wantResult {
				t.Errorf("result %q, want %q", got, tt.wantResult)
			}
			if seen.method != tt.wantMethod || seen.path != tt.wantPath {
				t.Errorf("request %s %s, want %s %s", seen.method, seen.path, tt.wantMethod, tt.wantPath)
			}
			if seen.authorization != "Bearer "+testToken {
				t.Errorf("Authorization %q, want the app token as Bearer", seen.authorization)
			}
			if seen.hasSession != tt.wantSession || (tt.wantSession && seen.session != testSession) {
				t.Errorf("VZ-M2M-Token present %v (%q), want %v", seen.hasSession, seen.session, tt.wantSession)
			}
			if tt.wantBody == nil {
				if len(seen.body) != 0 || seen.contentType != "" {
					t.Errorf("unexpected body %q (Content-Type %q)", seen.body, seen.contentType)
				}
			} else {
				var m map[string]string
				if err := json.Unmarshal(seen.body, &m); err != nil {
					t.Fatalf("body %q: %v", seen.body, err)
				}
				if fmt.Sprint(m) != fmt.Sprint(tt.wantBody) {
					t.Errorf("body %q, want %v", seen.body, tt.wantBody)
				}
				if seen.contentType != "application/json" {
					t.Errorf("Content-Type %q", seen.contentType)
				}
			}
			rec.Expect(t, tt.wantObs)
		})
	}
}

// The session header goes out with Verizon's spelling (headers are case-insensitive, but a
// literal-minded proxy might not be).
func TestM2MTokenHeaderSpelling(t *testing.T) {
	cl := m2mCall(EndpointAccount, http.MethodGet, accountsPath+testAcct, testToken, testSession, nil, false)
	req, _ := http.NewRequest(cl.method, "http://example.invalid"+cl.path, nil)
	for k, vs := range cl.header {
		req.Header[k] = vs // as request.go's do copies them
	}
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\r\nVZ-M2M-Token: "+testSession+"\r\n") {
		t.Fatalf("wire form lacks the documented header spelling:\n%s", b.String())
	}
}

type m2mErrCase struct {
	name    string
	status  int
	body    string
	headers []string
	kind    upstream.Kind            // for every endpoint ...
	kinds   map[string]upstream.Kind // ... unless overridden here
	code    string
	session bool // IsSessionInvalid
	bearer  bool // IsBearerRejected
	retry   time.Duration
}

var (
	loginAndResetRejected = map[string]upstream.Kind{EndpointLogin: upstream.Rejected, EndpointResetPassword: upstream.Rejected}
	loginRejected         = map[string]upstream.Kind{EndpointLogin: upstream.Rejected}
)

func m2mBody(code string) string { return `{"errorCode":"` + code + `","errorMessage":"something"}` }

var m2mErrorCases = []m2mErrCase{
	{name: "400 SessionToken.Expired", status: 400, body: m2mBody(codeExpired), kind: upstream.Rejected, code: codeExpired, session: true},
	{name: "400 SessionToken.Invalid", status: 400, body: m2mBody(codeInvalid), kind: upstream.Rejected, code: codeInvalid, session: true},
	{name: "401 SessionToken code", status: 401, body: m2mBody(codeExpired), kind: upstream.Rejected, code: codeExpired, session: true},
	{name: "400 SessionToken code without prefix", status: 400, body: m2mBody("SessionToken.Expired"), kind: upstream.Rejected, code: "SessionToken.Expired", session: true},
	{name: "400 Password.Invalid", status: 400, body: m2mBody(codePassword), kind: upstream.Invalid, kinds: loginAndResetRejected, code: codePassword},
	{name: "400 locked (code unknown, guessed)", status: 400, body: m2mBody(codeLocked), kind: upstream.Invalid, kinds: loginRejected, code: codeLocked},
	{name: "400 new code without prefix", status: 400, body: m2mBody("REQUEST_FAILED.Something_New"), kind: upstream.Invalid, kinds: loginRejected, code: "REQUEST_FAILED.Something_New"},
	{name: "401 M2M code", status: 401, body: m2mBody(codePassword), kind: upstream.Rejected, code: codePassword},
	{name: "403 M2M code", status: 403, body: m2mBody("UnifiedWebService.REQUEST_FAILED.Account.Suspended"), kind: upstream.Rejected, code: "UnifiedWebService.REQUEST_FAILED.Account.Suspended"},
	{name: "400 M2M code beats an OAuth error", status: 400, body: `{"error":"invalid_request","errorCode":"` + codePassword + `"}`, kind: upstream.Invalid, kinds: loginAndResetRejected, code: codePassword},
	{name: "401 M2M code beats a fault", status: 401, body: `{"fault":{"code":"900901"},"errorCode":"` + codePassword + `"}`, kind: upstream.Rejected, code: codePassword},
	{name: "401 fault 900901", status: 401, body: `{"fault":{"code":"900901","message":"Invalid Credentials","description":"x"}}`, kind: upstream.Rejected, code: "900901", bearer: true},
	{name: "401 fault 900901 as a number", status: 401, body: `{"fault":{"code":900901}}`, kind: upstream.Rejected, code: "900901", bearer: true},
	{name: "400 fault 900901", status: 400, body: `{"fault":{"code":"900901"}}`, kind: upstream.Rejected, code: "900901", bearer: true},
	{name: "401 fault 900902 missing credentials", status: 401, body: `{"fault":{"code":"900902","message":"Missing Credentials"}}`, kind: upstream.Rejected, code: "900902"},
	{name: "403 fault 900908 forbidden", status: 403, body: `{"fault":{"code":"900908"}}`, kind: upstream.Rejected, code: "900908"},
	{name: "400 fault 900906 no such resource", status: 400, body: `{"fault":{"code":"900906"}}`, kind: upstream.Invalid, code: "900906"},
	{name: "401 no body", status: 401, kind: upstream.Rejected},
	{name: "400 no body", status: 400, kind: upstream.Invalid},
	{name: "400 not json", status: 400, body: `Bad Request`, headers: []string{"Content-Type", "text/plain"}, kind: upstream.Invalid},
	{name: "400 errorCode with a digit is dropped", status: 400, body: m2mBody("UnifiedWebService.INPUT_INVALID.Passw0rd.Invalid"), kind: upstream.Invalid},
	{name: "400 errorCode of one segment is dropped", status: 400, body: m2mBody("PasswordInvalid"), kind: upstream.Invalid},
	{name: "400 errorCode with a space is dropped", status: 400, body: m2mBody("UnifiedWebService.INPUT INVALID.Password"), kind: upstream.Invalid},
	{name: "400 errorCode with an empty segment is dropped", status: 400, body: m2mBody("UnifiedWebService..Password.Invalid"), kind: upstream.Invalid},
	{name: "400 errorCode with a trailing dot is dropped", status: 400, body: m2mBody("UnifiedWebService.Password."), kind: upstream.Invalid},
	{name: "400 errorCode too long is dropped", status: 400, body: m2mBody("UnifiedWebService." + strings.Repeat("A", 80)), kind: upstream.Invalid},
	{name: "400 errorCode not a string is dropped", status: 400, body: `{"errorCode":{"code":"` + codePassword + `"}}`, kind: upstream.Invalid},
	{name: "400 errorCode is the password", status: 400, body: m2mBody(testUWSPass), kind: upstream.Invalid},
	{name: "400 errorCode is the session token", status: 400, body: m2mBody(testSession), kind: upstream.Invalid},
	{name: "400 errorCode quoting the session", status: 400, body: m2mBody("UnifiedWebService.SessionToken." + testSession), kind: upstream.Invalid},
	{name: "400 oversized body classified by status alone", status: 400, body: `{"errorCode":"` + codePassword + `","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`, kind: upstream.Invalid},
	{name: "404", status: 404, kind: upstream.Invalid},
	{name: "405", status: 405, kind: upstream.Invalid},
	{name: "408", status: 408, body: m2mBody(codePassword), kind: upstream.Transient, code: codePassword},
	{name: "429 with M2M code and retry-after", status: 429, body: m2mBody(codePassword), headers: []string{"Retry-After", "7"}, kind: upstream.Transient, code: codePassword, retry: 7 * time.Second},
	{name: "503 fault 900800 retry-after date", status: 503, body: `{"fault":{"code":"900800"}}`, headers: []string{"Retry-After", testNow.Add(2 * time.Minute).Format(http.TimeFormat)}, kind: upstream.Transient, code: "900800", retry: 2 * time.Minute},
	{name: "500 with a SessionToken code", status: 500, body: m2mBody(codeExpired), kind: upstream.Transient, code: codeExpired},
	{name: "502 html", status: 502, body: `<html>bad gateway</html>`, headers: []string{"Content-Type", "text/html"}, kind: upstream.Transient},
	{name: "409 M2M code", status: 409, body: m2mBody(codePassword), kind: upstream.Unknown, code: codePassword},
	{name: "302 not followed", status: 302, headers: []string{"Location", "/elsewhere"}, kind: upstream.Unknown},
}

func TestM2MErrorMapping(t *testing.T) {
	for _, ep := range m2mCalls {
		for _, tt := range m2mErrorCases {
			t.Run(ep.endpoint+"/"+tt.name, func(t *testing.T) {
				srv := newServer(t, respond(tt.status, tt.body, tt.headers...))
				c, rec := newTestClient(t, srv)
				got, err := ep.call(c, t)
				if got != "" {
					t.Errorf("result %q returned with an error", got)
				}
				var ue *upstream.Error
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want *upstream.Error", err)
				}
				wantKind := tt.kind
				if k, ok := tt.kinds[ep.endpoint]; ok {
					wantKind = k
				}
				if ue.API != API || ue.Endpoint != ep.endpoint || ue.StatusCode != tt.status {
					t.Errorf("API/Endpoint/Status = %q/%q/%d", ue.API, ue.Endpoint, ue.StatusCode)
				}
				if ue.Kind != wantKind {
					t.Errorf("Kind = %v, want %v", ue.Kind, wantKind)
				}
				if ue.Code != tt.code {
					t.Errorf("Code = %q, want %q", ue.Code, tt.code)
				}
				if ue.RetryAfter != tt.retry {
					t.Errorf("RetryAfter = %v, want %v", ue.RetryAfter, tt.retry)
				}
				if IsSessionInvalid(err) != tt.session || IsBearerRejected(err) != tt.bearer {
					t.Errorf("IsSessionInvalid/IsBearerRejected = %v/%v, want %v/%v",
						IsSessionInvalid(err), IsBearerRejected(err), tt.session, tt.bearer)
				}
				// Wrapping keeps the answers.
				wrapped := fmt.Errorf("reconcile: %w", err)
				if IsSessionInvalid(wrapped) != tt.session || IsBearerRejected(wrapped) != tt.bearer {
					t.Error("Is* helpers do not look through wrapping")
				}
				rec.Expect(t, ep.endpoint+" "+strconv.Itoa(tt.status))
			})
		}
	}
}

func TestM2MHelpersIgnoreOtherErrors(t *testing.T) {
	tokenFault := func(status int, body string) error {
		srv := newServer(t, respond(status, body))
		c, _ := newTestClient(t, srv)
		_, err := c.Token(t.Context(), testCreds, "")
		return err
	}
	tests := map[string]error{
		"nil":                     nil,
		"plain error":             errors.New(codeExpired + " 900901"),
		"token 900901":            tokenFault(401, `{"fault":{"code":"900901"}}`),
		"token with M2M codes":    tokenFault(400, `{"errorCode":"`+codePassword+`"}`),
		"token with session code": tokenFault(400, `{"errorCode":"`+codeExpired+`"}`),
		"other API":               upstream.StatusError("cloud", EndpointLogin, 400, codePassword, upstream.Rejected, 0),
		"other API session":       upstream.StatusError("cloud", EndpointAccount, 400, codeExpired, upstream.Rejected, 0),
		"other API bearer":        upstream.StatusError("cloud", EndpointAccount, 401, "900901", upstream.Rejected, 0),
		"transport":               upstream.TransportError(API, EndpointLogin, io.ErrUnexpectedEOF),
		"refused before sending":  upstream.NewError(API, EndpointLogin, 0, upstream.Invalid, "x", nil),
		// Code is an exported field: the helpers re-check its shape.
		"hand-made code with a digit": upstream.StatusError(API, EndpointLogin, 400, "UnifiedWebService.Passw0rd", upstream.Rejected, 0),
	}
	for name, err := range tests {
		if IsSessionInvalid(err) || IsBearerRejected(err) {
			t.Errorf("%s: IsSessionInvalid/IsBearerRejected = %v/%v, want both false",
				name, IsSessionInvalid(err), IsBearerRejected(err))
		}
	}
}

func TestM2MRefusedBeforeSending(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	c, rec := newTestClient(t, srv)
	ctx := t.Context()
	tests := map[string]func() error{
		"login: empty app token": func() error { _, err := c.Login(ctx, "", testUWS); return err },
		"login: app token with CRLF": func() error {
			_, err := c.Login(ctx, testToken+"\r\nX-Injected: 1", testUWS)
			return err
		},
		"login: app token with space": func() error { _, err := c.Login(ctx, "a b", testUWS); return err },
		"login: empty username": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Password: testUWSPass})
			return err
		},
		"login: empty password": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: testUWSUser})
			return err
		},
		"login: password with a trailing newline": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: testUWSUser, Password: testUWSPass + "\n"})
			return err
		},
		"login: password not UTF-8": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: testUWSUser, Password: testUWSPass + "\xff"})
			return err
		},
		"login: username with a tab": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: "uws\tuser", Password: testUWSPass})
			return err
		},
		"logout: empty session":          func() error { return c.Logout(ctx, testToken, "") },
		"logout: empty app token":        func() error { return c.Logout(ctx, "", testSession) },
		"logout: session with a newline": func() error { return c.Logout(ctx, testToken, testSession+"\n") },
		"reset: empty session": func() error {
			_, err := c.ResetPassword(ctx, testToken, "", testUWSPass)
			return err
		},
		"reset: empty old password": func() error {
			_, err := c.ResetPassword(ctx, testToken, testSession, "")
			return err
		},
		"reset: old password with control characters": func() error {
			_, err := c.ResetPassword(ctx, testToken, testSession, testUWSPass+"\x00")
			return err
		},
		"account: empty session":      func() error { return c.Account(ctx, testToken, "", testAcct) },
		"account: empty name":         func() error { return c.Account(ctx, testToken, testSession, "") },
		"account: dot-dot":            func() error { return c.Account(ctx, testToken, testSession, "..") },
		"account: slash":              func() error { return c.Account(ctx, testToken, testSession, "../session/logout") },
		"account: query":              func() error { return c.Account(ctx, testToken, testSession, "x?y=1") },
		"account: percent":            func() error { return c.Account(ctx, testToken, testSession, "%2e%2e") },
		"account: space":              func() error { return c.Account(ctx, testToken, testSession, "a b") },
		"account: too long":           func() error { return c.Account(ctx, testToken, testSession, strings.Repeat("1", 65)) },
		"account: non-ASCII":          func() error { return c.Account(ctx, testToken, testSession, "compte-é") },
		"account: session with space": func() error { return c.Account(ctx, testToken, "a b", testAcct) },
	}
	for name, call := range tests {
		t.Run(name, func(t *testing.T) {
			err := call()
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Invalid || ue.StatusCode != 0 {
				t.Fatalf("err = %v, want Invalid with no status", err)
			}
			if IsSessionInvalid(err) || IsBearerRejected(err) {
				t.Error("a refusal before sending reads as an upstream answer")
			}
			if l := m2mLeaked(err.Error()); len(l) > 0 {
				t.Errorf("message %q leaks %q", err, l)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("server got %d requests for arguments that cannot be sent", hits.Load())
	}
	rec.Expect(t)

	// Values at the edge of the rules are sent.
	ok := newServer(t, respond(200, `{}`))
	c2, _ := newTestClient(t, ok)
	if err := c2.Account(ctx, testToken, testSession, strings.Repeat("1", 64)); err != nil {
		t.Errorf("64-character account name: %v", err)
	}
	if err := c2.Account(ctx, testToken, testSession, "a.b_c~d-e"); err != nil {
		t.Errorf("account name with . _ ~ -: %v", err)
	}
}

func TestLoginMalformed200IsTransient(t *testing.T) {
	bodies := map[string]string{
		"empty":                   ``,
		"not json":                `<html>proxy login</html>`,
		"json array":              `[]`,
		"sessionToken missing":    `{"token":"` + testSession + `"}`,
		"sessionToken empty":      `{"sessionToken":""}`,
		"sessionToken a number":   `{"sessionToken":12345}`,
		"sessionToken with CRLF":  `{"sessionToken":"a\r\nX-Injected: 1"}`,
		"sessionToken with space": `{"sessionToken":"a b"}`,
		"oversized":               `{"sessionToken":"` + testSession + `","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, respond(200, body))
			c, rec := newTestClient(t, srv)
			session, err := c.Login(t.Context(), testToken, testUWS)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Transient || ue.StatusCode != 200 {
				t.Fatalf("err = %v, want a transient *upstream.Error with status 200", err)
			}
			if session != "" || upstream.KindOf(err) == upstream.Rejected {
				t.Error("a malformed 200 is neither a session nor a rejection")
			}
			rec.Expect(t, "login 200")
		})
	}
}

// A 2xx reset whose password cannot be read means the password changed and is lost: Unknown,
// never Transient (a retry cannot bring it back).
func TestResetPasswordMalformed200IsUnknown(t *testing.T) {
	bodies := map[string]string{
		"empty":                    ``,
		"not json":                 `<html>proxy</html>`,
		"newPassword missing":      `{"password":"` + testNewPass + `"}`,
		"newPassword empty":        `{"newPassword":""}`,
		"newPassword a number":     `{"newPassword":123456789}`,
		"newPassword with newline": `{"newPassword":"` + testNewPass + `\n"}`,
		"newPassword not UTF-8":    "{\"newPassword\":\"" + testNewPass + "\xff\"}",
		"newPassword too long":     `{"newPassword":"` + strings.Repeat("A1b", 50) + `"}`,
		"oversized":                `{"newPassword":"` + testNewPass + `","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, respond(200, body))
			c, rec := newTestClient(t, srv)
			pw, err := c.ResetPassword(t.Context(), testToken, testSession, testUWSPass)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Unknown || ue.StatusCode != 200 || ue.Endpoint != EndpointResetPassword {
				t.Fatalf("err = %v, want an Unknown *upstream.Error with status 200", err)
			}
			if pw != "" {
				t.Error("a password returned with an error")
			}
			if !strings.Contains(err.Error(), "password has probably changed") {
				t.Errorf("message %q does not warn that the password changed", err)
			}
			rec.Expect(t, "password_reset 200")
		})
	}
}

// Account discards the body with a bounded read: an endless body neither hangs nor fails it.
func TestAccountEndlessBody(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	c, rec := newTestClient(t, srv, WithRequestTimeout(10*time.Second))
	start := time.Now()
	if err := c.Account(t.Context(), testToken, testSession, testAcct); err != nil {
		t.Fatalf("Account: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: the body read is not bounded", d)
	}
	rec.Expect(t, "account 200")
}

// --- leaks ---

// m2mNeedles must never appear in anything printed: the UWS password (old and new), the session
// token, the app token and upstream free text.
var m2mNeedles = []string{testUWSPass, testNewPass, testSession, testToken, descriptionMarker}

func m2mLeaked(s string) []string {
	var found []string
	for _, n := range m2mNeedles {
		if strings.Contains(s, n) {
			found = append(found, n)
		}
	}
	return found
}

func TestM2MLeakDetector(t *testing.T) {
	for _, n := range m2mNeedles {
		if len(m2mLeaked("a "+n+" b")) == 0 {
			t.Fatalf("detector misses %q", n)
		}
	}
	if len(m2mLeaked("nothing")) != 0 {
		t.Fatal("false positive")
	}
}

func TestM2MNoSecretsInErrors(t *testing.T) {
	echo := strings.Join(m2mNeedles, " ")
	echoing := func(status int, shape string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				t.Errorf("server did not receive the app token: the test would prove nothing")
			}
			heard := echo + " " + string(b) + " " + r.Header.Get("Authorization") + " " + r.Header.Get(M2MTokenHeader)
			var body any
			switch shape {
			case "m2m":
				body = map[string]any{"errorCode": testUWSPass, "errorMessage": heard}
			case "m2m session code":
				body = map[string]any{"errorCode": "UnifiedWebService.SessionToken." + testSession, "errorMessage": heard}
			case "m2m dotted password":
				// Even a password-shaped segment in a valid code: only its letters could pass.
				body = map[string]any{"errorCode": "UnifiedWebService." + testUWSPass + ".Invalid", "errorMessage": heard}
			case "fault":
				body = map[string]any{"fault": map[string]any{"code": testSession, "message": heard, "description": heard}}
			case "everything":
				body = map[string]any{
					"error": testUWSPass, "error_description": heard,
					"fault":     map[string]any{"code": testToken, "message": heard, "description": heard},
					"errorCode": testSession, "errorMessage": heard,
					"sessionToken": heard, "newPassword": heard,
				}
			}
			out, _ := json.Marshal(body)
			if len(m2mLeaked(string(out))) != len(m2mNeedles) && shape == "everything" {
				t.Error("fake server does not echo every needle")
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", echo)
			w.Header().Set("X-Echo", testUWSPass)
			w.WriteHeader(status)
			_, _ = w.Write(out)
		}
	}
	handlers := map[string]http.HandlerFunc{}
	for _, status := range []int{400, 401, 403, 404, 409, 429, 500, 503} {
		for _, shape := range []string{"m2m", "m2m session code", "m2m dotted password", "fault", "everything"} {
			handlers[strconv.Itoa(status)+" "+shape] = echoing(status, shape)
		}
	}
	handlers["200 malformed echo"] = func(w http.ResponseWriter, r *http.Request) {
		out, _ := json.Marshal(map[string]any{"sessionToken": echo, "newPassword": map[string]string{"x": echo}})
		_, _ = w.Write(out)
	}
	handlers["200 invalid json quoting secrets"] = func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"sessionToken":` + testSession + `,"newPassword":` + testNewPass + `}`))
	}
	handlers["malformed status line"] = func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 2" + echo + "\r\n\r\n")
		_ = buf.Flush()
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, h)
			c, _ := newTestClient(t, srv)
			for _, ep := range m2mCalls {
				_, err := ep.call(c, t)
				if err == nil {
					if strings.HasPrefix(name, "200") && (ep.endpoint == EndpointLogout || ep.endpoint == EndpointAccount) {
						continue // these ignore 2xx bodies
					}
					t.Fatalf("%s: no error", ep.endpoint)
				}
				wrapped := fmt.Errorf("reconcile: %w", err)
				for _, s := range []string{
					err.Error(), wrapped.Error(),
					fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err),
					fmt.Sprintf("%s", err), fmt.Sprintf("%q", err), fmt.Sprintf("%x", err),
					fmt.Sprintf("%#v", wrapped), mustJSON(t, err),
				} {
					if l := m2mLeaked(s); len(l) > 0 {
						t.Errorf("%s error rendering %q leaks %q", ep.endpoint, s, l)
					}
				}
				var ue *upstream.Error
				if errors.As(err, &ue) && m2mLeaked(ue.Code) != nil {
					t.Errorf("%s: Code %q holds a secret", ep.endpoint, ue.Code)
				}
			}
		})
	}
}

func TestUWSCredentialsRenderings(t *testing.T) {
	values := map[string]any{
		"UWSCredentials":  testUWS,
		"*UWSCredentials": &testUWS,
		"struct":          struct{ C UWSCredentials }{testUWS},
		"slice":           []any{testUWS},
		"map":             map[string]any{"c": testUWS},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			var renderings []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
				renderings = append(renderings, fmt.Sprintf(verb, v))
			}
			renderings = append(renderings, mustJSON(t, v), fmt.Sprint(v), fmt.Sprintln(v))
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "value", v)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "value", v)
			renderings = append(renderings, buf.String())
			if m, ok := v.(interface{ MarshalLog() any }); ok {
				renderings = append(renderings, mustJSON(t, m.MarshalLog()), fmt.Sprintf("%+v", m.MarshalLog()))
			}
			for _, s := range renderings {
				if l := m2mLeaked(s); len(l) > 0 {
					t.Errorf("rendering %q leaks %q", s, l)
				}
			}
		})
	}
	for _, tt := range []struct{ got, want string }{
		{fmt.Sprintf("%v", testUWS), "{Username:" + testUWSUser + " Password:" + Redacted + "}"},
		{fmt.Sprintf("%#v", testUWS), `thingspace.UWSCredentials{Username:"` + testUWSUser + `", Password:"` + Redacted + `"}`},
		{fmt.Sprintf("%v", UWSCredentials{Username: "u"}), "{Username:u Password:}"},
		{mustJSON(t, testUWS), `{"username":"` + testUWSUser + `","password":"` + Redacted + `"}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// --- credential rules ---

func TestValidateUWS(t *testing.T) {
	const (
		noUpper  = "password has no upper case letter"
		noLower  = "password has no lower case letter"
		noDigit  = "password has no digit"
		noSymbol = "password has no symbol"
		sequence = "password contains a common sequence (such as 12345, qwerty or abcde) or one character five times in a row"
		forbid   = `password contains a forbidden character (one of ; & < > [ ] , . ' " /)`
		control  = "password contains control characters (a trailing newline?)"
	)
	tests := []struct {
		name           string
		creds          UWSCredentials
		problems, warn []string
	}{
		{"policy-compliant", UWSCredentials{"ab", "Gr8-Horse!Bat"}, nil, nil},
		{"Verizon-generated (no symbol)", UWSCredentials{"machine", testNewPass}, nil, []string{noSymbol}},
		{"32-character username and password", UWSCredentials{strings.Repeat("u", 32), "Aa1-" + strings.Repeat("xyZ9", 7)}, nil, nil},
		{"multi-byte characters count once", UWSCredentials{"ée", "Ünïcødé-1"}, nil, nil},
		{"empty username", UWSCredentials{"", "Gr8-Horse!Bat"}, []string{"username is empty"}, nil},
		{"1-character username", UWSCredentials{"u", "Gr8-Horse!Bat"}, []string{"username is 1 character long; 2 to 32 required"}, nil},
		{"33-character username", UWSCredentials{strings.Repeat("u", 33), "Gr8-Horse!Bat"}, []string{"username is 33 characters long; 2 to 32 required"}, nil},
		{"username with a newline", UWSCredentials{"user\n", "Gr8-Horse!Bat"}, []string{"username contains control characters"}, nil},
		{"username not UTF-8", UWSCredentials{"us\xffer", "Gr8-Horse!Bat"}, []string{"username is not valid UTF-8"}, nil},
		{"empty password", UWSCredentials{"user", ""}, []string{"password is empty"}, nil},
		{"short password", UWSCredentials{"user", "Ab1-x"}, []string{"password is 5 characters long; 8 to 32 required"}, nil},
		{"long password", UWSCredentials{"user", "Aa1-" + strings.Repeat("xyZ9", 8)}, []string{"password is 36 characters long; 8 to 32 required"}, nil},
		{"password not UTF-8", UWSCredentials{"user", "Gr8-Horse\xff"}, []string{"password is not valid UTF-8"}, nil},
		{"password with a trailing newline", UWSCredentials{"user", "Gr8-Horse!Bat\n"}, []string{control}, nil},
		{"forbidden ;", UWSCredentials{"user", "Gr8;HorseBat"}, []string{forbid}, nil},
		{"forbidden &", UWSCredentials{"user", "Gr8&HorseBat"}, []string{forbid}, nil},
		{"forbidden <", UWSCredentials{"user", "Gr8<HorseBat"}, []string{forbid}, nil},
		{"forbidden >", UWSCredentials{"user", "Gr8>HorseBat"}, []string{forbid}, nil},
		{"forbidden [", UWSCredentials{"user", "Gr8[HorseBat"}, []string{forbid}, nil},
		{"forbidden ]", UWSCredentials{"user", "Gr8]HorseBat"}, []string{forbid}, nil},
		{"forbidden ,", UWSCredentials{"user", "Gr8,HorseBat"}, []string{forbid}, nil},
		{"forbidden .", UWSCredentials{"user", "Gr8.HorseBat"}, []string{forbid}, nil},
		{"forbidden '", UWSCredentials{"user", "Gr8'HorseBat"}, []string{forbid}, nil},
		{`forbidden "`, UWSCredentials{"user", `Gr8"HorseBat`}, []string{forbid}, nil},
		{"forbidden /", UWSCredentials{"user", "Gr8/HorseBat"}, []string{forbid}, nil},
		{"short and forbidden", UWSCredentials{"user", "a.b"}, []string{"password is 3 characters long; 8 to 32 required", forbid}, []string{noUpper, noDigit}},
		{"no upper", UWSCredentials{"user", "gr8-horse!bat"}, nil, []string{noUpper}},
		{"no lower", UWSCredentials{"user", "GR8-HORSE!BAT"}, nil, []string{noLower}},
		{"no digit", UWSCredentials{"user", "Great-Horse!Bat"}, nil, []string{noDigit}},
		{"letters only", UWSCredentials{"user", "horsebattery"}, nil, []string{noUpper, noDigit, noSymbol}},
		{"12345", UWSCredentials{"user", "Ab-x12345"}, nil, []string{sequence}},
		{"54321", UWSCredentials{"user", "Ab-x54321"}, nil, []string{sequence}},
		{"67890", UWSCredentials{"user", "Ab-x67890"}, nil, []string{sequence}},
		{"qwerty in any case", UWSCredentials{"user", "QwErTy-9z"}, nil, []string{sequence}},
		{"abcde", UWSCredentials{"user", "9-xABCDEz"}, nil, []string{sequence}},
		{"five of a kind", UWSCredentials{"user", "Ab-9zzzzz"}, nil, []string{sequence}},
		{"four of a kind is fine", UWSCredentials{"user", "Ab-9zzzz"}, nil, nil},
		{"1234 is fine", UWSCredentials{"user", "Ab-x1234y"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, warnings := ValidateUWS(tt.creds)
			if fmt.Sprintf("%q", problems) != fmt.Sprintf("%q", tt.problems) {
				t.Errorf("problems = %q, want %q", problems, tt.problems)
			}
			if fmt.Sprintf("%q", warnings) != fmt.Sprintf("%q", tt.warn) {
				t.Errorf("warnings = %q, want %q", warnings, tt.warn)
			}
			// No message may contain the password.
			for _, msg := range append(problems, warnings...) {
				if p := tt.creds.Password; p != "" && strings.Contains(msg, p) {
					t.Errorf("message %q contains the password", msg)
				}
			}
		})
	}
}

// Messages are fixed sentences: no password, however chosen, shows up in them. Each password
// is prefixed with a NUL, which no message contains unless it quotes the password.
func TestValidateUWSNeverQuotesThePassword(t *testing.T) {
	passwords := []string{
		"has no upper case letter", "password", "12345", "a", "characters long", "forbidden",
		"Gr8;HorseBat", "qwerty", "x.y", "required", "symbol", "8 to 32",
	}
	for _, p := range passwords {
		problems, warnings := ValidateUWS(UWSCredentials{Username: "user", Password: "\x00" + p})
		for _, msg := range append(problems, warnings...) {
			if strings.Contains(msg, "\x00") {
				t.Errorf("password %q: message %q quotes it", p, msg)
			}
		}
	}
}

// --- against the simulator ---

// TestM2MAgainstSimulator runs every call and every error the controller relies on against the
// simulator, so client and simulator are known to agree on the wire.
func TestM2MAgainstSimulator(t *testing.T) {
	sim := simulator.New(simulator.Config{
		Apps:     map[string]string{testKey: testSecret},
		M2MUsers: map[string]string{testUWSUser: testUWSPass},
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tok, err := c.Token(ctx, testCreds, "")
	if err != nil {
		t.Fatal(err)
	}
	app := tok.AccessToken

	// A wrong password is a login rejection; five in a row lock the user, and the locked
	// answer is a login rejection too.
	wrong := UWSCredentials{Username: testUWSUser, Password: "Wrong-Pass1"}
	for i := range 5 {
		_, err := c.Login(ctx, app, wrong)
		if upstream.KindOf(err) != upstream.Rejected || IsBearerRejected(err) || IsSessionInvalid(err) {
			t.Fatalf("wrong password %d: %v", i, err)
		}
		if code := err.(*upstream.Error).Code; code != codePassword {
			t.Fatalf("wrong password: Code %q", code)
		}
	}
	_, err = c.Login(ctx, app, testUWS)
	if upstream.KindOf(err) != upstream.Rejected || err.(*upstream.Error).Code != simulator.DefaultM2MLockedCode {
		t.Fatalf("locked: %v", err)
	}
	sim.UnlockM2MUser(testUWSUser)

	session, err := c.Login(ctx, app, testUWS)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := c.Account(ctx, app, session, testAcct); err != nil {
		t.Fatalf("account: %v", err)
	}

	// Reset: the returned password is the one in force.
	if _, err := c.ResetPassword(ctx, app, session, "Wrong-Pass1"); upstream.KindOf(err) != upstream.Rejected || IsSessionInvalid(err) {
		t.Fatalf("reset with a wrong old password: %v", err)
	}
	newPass, err := c.ResetPassword(ctx, app, session, testUWSPass)
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	if info, _ := sim.M2MUser(testUWSUser); info.Password != newPass {
		t.Fatal("ResetPassword returned a password that is not in force")
	}
	if problems, _ := ValidateUWS(UWSCredentials{Username: testUWSUser, Password: newPass}); len(problems) > 0 {
		t.Fatalf("a simulator password breaks the rules: %q", problems)
	}
	if _, err := c.Login(ctx, app, testUWS); upstream.KindOf(err) != upstream.Rejected || IsBearerRejected(err) {
		t.Fatalf("old password after reset: %v", err)
	}
	session2, err := c.Login(ctx, app, UWSCredentials{Username: testUWSUser, Password: newPass})
	if err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	// Expired and ended sessions.
	sim.ExpireM2MSessions()
	if err := c.Account(ctx, app, session, testAcct); !IsSessionInvalid(err) || err.(*upstream.Error).Code != codeExpired {
		t.Fatalf("account on an expired session: %v", err)
	}
	if err := c.Logout(ctx, app, session2); !IsSessionInvalid(err) {
		t.Fatalf("logout of an expired session: %v", err)
	}
	session3, err := c.Login(ctx, app, UWSCredentials{Username: testUWSUser, Password: newPass})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx, app, session3); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if err := c.Account(ctx, app, session3, testAcct); !IsSessionInvalid(err) || err.(*upstream.Error).Code != codeInvalid {
		t.Fatalf("account after logout: %v", err)
	}

	// A revoked app token is a Bearer rejection, on login as on session calls, and never a
	// login rejection: the user's failure count does not move.
	session4, err := c.Login(ctx, app, UWSCredentials{Username: testUWSUser, Password: newPass})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, testCreds, app); err != nil {
		t.Fatal(err)
	}
	if err := c.Account(ctx, app, session4, testAcct); !IsBearerRejected(err) || IsSessionInvalid(err) {
		t.Fatalf("account with a revoked token: %v", err)
	}
	if _, err := c.Login(ctx, app, wrong); !IsBearerRejected(err) {
		t.Fatalf("login with a revoked token: %v", err)
	}
	if info, _ := sim.M2MUser(testUWSUser); info.ConsecutiveFailures != 0 {
		t.Fatalf("a Bearer rejection counted as a failed login: %+v", info.ConsecutiveFailures)
	}

	// Throttling is transient with its Retry-After, and not a login rejection.
	tok, _ = c.Token(ctx, testCreds, "")
	sim.SetFaults(simulator.Faults{Rate: 1, Status: 429, RetryAfter: 3 * time.Second})
	_, err = c.Login(ctx, tok.AccessToken, UWSCredentials{Username: testUWSUser, Password: newPass})
	if ra, _ := upstream.RetryAfterOf(err); !upstream.IsTransient(err) || ra != 3*time.Second {
		t.Fatalf("throttled login: %v", err)
	}
}
