package thingspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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
