package oauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

const testSecret = "S3cret+/=value"

type testName struct{}

func (testName) GoName() string { return "pkg.Credentials" }

type testCredentials = Credentials[testName]

func TestCredentialsValidate(t *testing.T) {
	tests := []struct {
		name  string
		creds testCredentials
		want  string
	}{
		{name: "ok", creds: testCredentials{Key: "k", Secret: testSecret}},
		{name: "ok with odd characters", creds: testCredentials{Key: "k~ey", Secret: "s/e+c=r?e&t> <"}},
		{name: "empty key", creds: testCredentials{Secret: testSecret}, want: "key is empty"},
		{name: "empty secret", creds: testCredentials{Key: "k"}, want: "secret is empty"},
		{name: "colon in key", creds: testCredentials{Key: "a:b", Secret: testSecret}, want: "key contains a colon"},
		{name: "newline in secret", creds: testCredentials{Key: "k", Secret: testSecret + "\n"}, want: "control characters"},
		{name: "DEL in key", creds: testCredentials{Key: "k\x7f", Secret: testSecret}, want: "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.creds.Validate("api", "ep")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ue, ok := errors.AsType[*upstream.Error](err)
			if !ok || ue.Kind != upstream.Invalid || ue.StatusCode != 0 || ue.API != "api" || ue.Endpoint != "ep" {
				t.Fatalf("err = %#v", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("message %q", err)
			}
		})
	}
}

func TestCredentialsBasicAuth(t *testing.T) {
	c := testCredentials{Key: "k~ey", Secret: testSecret}
	got := c.BasicAuth()
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("k~ey:"+testSecret)); got != want {
		t.Fatalf("BasicAuth = %q, want %q", got, want)
	}
	user, pass, ok := (&http.Request{Header: http.Header{"Authorization": {got}}}).BasicAuth()
	if !ok || user != c.Key || pass != c.Secret {
		t.Error("net/http cannot decode it")
	}
}

func TestCredentialsRenderings(t *testing.T) {
	c := testCredentials{Key: "the-key", Secret: testSecret}
	for verb, want := range map[string]string{
		"%v":  "{Key:the-key Secret:[REDACTED]}",
		"%s":  "{Key:the-key Secret:[REDACTED]}",
		"%x":  "{Key:the-key Secret:[REDACTED]}",
		"%q":  `"{Key:the-key Secret:[REDACTED]}"`,
		"%#v": `pkg.Credentials{Key:"the-key", Secret:"[REDACTED]"}`,
	} {
		if got := fmt.Sprintf(verb, c); got != want {
			t.Errorf("%s = %q, want %q", verb, got, want)
		}
	}
	if got := fmt.Sprintf("%v", testCredentials{Key: "k"}); got != "{Key:k Secret:}" {
		t.Errorf("empty secret renders %q", got)
	}
	b, _ := json.Marshal(c)
	if string(b) != `{"key":"the-key","secret":"[REDACTED]"}` {
		t.Errorf("JSON %s", b)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "c", c, "p", &c)
	lb, _ := json.Marshal(c.MarshalLog())
	for _, s := range []string{buf.String(), string(lb)} {
		if strings.Contains(s, testSecret) || !strings.Contains(s, "the-key") {
			t.Errorf("rendering %q", s)
		}
	}
}

func TestErrorCode(t *testing.T) {
	for body, want := range map[string]string{
		`{"error":"invalid_grant","error_description":"x"}`: "invalid_grant",
		`{"error":"invalid_client"}`:                        "invalid_client",
		`{"error":"temporarily_unavailable"}`:               "temporarily_unavailable",
		`{"error":"some_new_code"}`:                         "",
		`{"error":"` + testSecret + `"}`:                    "",
		`{"error":"INVALID_GRANT"}`:                         "",
		`{"error":{"code":"invalid_grant"}}`:                "",
		`{"error":null}`:                                    "",
		`{"error_description":"invalid_grant"}`:             "",
		`["invalid_grant"]`:                                 "",
		`invalid_grant`:                                     "",
		``:                                                  "",
	} {
		if got := ParseErrorCode([]byte(body)); got != want {
			t.Errorf("ParseErrorCode(%s) = %q, want %q", body, got, want)
		}
	}
	if ErrorCode(nil) != "" || ErrorCode(json.RawMessage(`"invalid_scope"`)) != "invalid_scope" {
		t.Error("ErrorCode on raw members")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   upstream.Kind
	}{
		{408, "", upstream.Transient},
		{429, "", upstream.Transient},
		{500, "", upstream.Transient},
		{503, "invalid_client", upstream.Transient},
		{400, "server_error", upstream.Transient},
		{400, "temporarily_unavailable", upstream.Transient},
		{401, "", upstream.Rejected},
		{401, "invalid_client", upstream.Rejected},
		{401, "invalid_grant", upstream.Rejected},
		{403, "", upstream.Rejected},
		{400, "invalid_grant", upstream.Rejected},
		{400, "invalid_client", upstream.Rejected},
		{400, "unauthorized_client", upstream.Rejected},
		{400, "invalid_request", upstream.Invalid},
		{400, "unsupported_grant_type", upstream.Invalid},
		{400, "", upstream.Invalid},
		{404, "", upstream.Invalid},
		{405, "", upstream.Invalid},
		{302, "", upstream.Unknown},
		{409, "invalid_grant", upstream.Unknown},
	}
	for _, tt := range tests {
		if got := Classify(tt.status, tt.code); got != tt.want {
			t.Errorf("Classify(%d, %q) = %v, want %v", tt.status, tt.code, got, tt.want)
		}
	}
}

func TestTokenValueChecks(t *testing.T) {
	for v, want := range map[string]bool{
		"abc-123._~+/=": true,
		"":              false,
		"a b":           false,
		"a\tb":          false,
		"a\r\nX: 1":     false,
		"é":             false,
		"a\x7f":         false,
	} {
		if IsTokenValue(v) != want {
			t.Errorf("IsTokenValue(%q) = %v", v, !want)
		}
		err := CheckTokenArg("api", "ep", "access token", v)
		if (err == nil) != want {
			t.Errorf("CheckTokenArg(%q) = %v", v, err)
		}
		if err != nil && (!upstream.IsInvalid(err) || strings.Contains(err.Error(), v) && v != "") {
			t.Errorf("CheckTokenArg(%q) = %v", v, err)
		}
	}
}

// Issue 8 scenarios 7, 12 and 18: expires_in is only RECOMMENDED (RFC 6749 §5.1). 0 means
// "expired now" (ThingSpace's last-second answer), fractional seconds round down to the
// millisecond, a missing or null member gets AssumedExpiresIn, and an absurd lifetime is capped
// at MaxExpiresIn; only a negative or non-numeric value is malformed.
func TestParseExpiresIn(t *testing.T) {
	tests := []struct {
		raw  string
		want Lifetime
		bad  bool
	}{
		{raw: `3600`, want: Lifetime{ExpiresIn: time.Hour}},
		{raw: `"120"`, want: Lifetime{ExpiresIn: 2 * time.Minute}},
		{raw: `3600.0`, want: Lifetime{ExpiresIn: time.Hour}},
		{raw: ` 60 `, want: Lifetime{ExpiresIn: time.Minute}},
		{raw: `0`, want: Lifetime{ExpiresIn: 0}},
		{raw: `"0"`, want: Lifetime{ExpiresIn: 0}},
		{raw: `0.0`, want: Lifetime{ExpiresIn: 0}},
		{raw: `1.5`, want: Lifetime{ExpiresIn: 1500 * time.Millisecond}},
		{raw: `59.9999`, want: Lifetime{ExpiresIn: 59999 * time.Millisecond}},
		{raw: `0.0004`, want: Lifetime{ExpiresIn: 0}},
		{raw: `"3599.5"`, want: Lifetime{ExpiresIn: 3599500 * time.Millisecond}},
		{raw: `86400`, want: Lifetime{ExpiresIn: MaxExpiresIn}},
		{raw: `86401`, want: Lifetime{ExpiresIn: MaxExpiresIn, Capped: true}},
		{raw: `2147483647`, want: Lifetime{ExpiresIn: MaxExpiresIn, Capped: true}},
		{raw: `2147483648`, want: Lifetime{ExpiresIn: MaxExpiresIn, Capped: true}},
		{raw: `1e20`, want: Lifetime{ExpiresIn: MaxExpiresIn, Capped: true}},
		{raw: `9223372036854775808`, want: Lifetime{ExpiresIn: MaxExpiresIn, Capped: true}},
		{raw: ``, want: Lifetime{ExpiresIn: AssumedExpiresIn, Assumed: true}},
		{raw: `null`, want: Lifetime{ExpiresIn: AssumedExpiresIn, Assumed: true}},
		{raw: ` null `, want: Lifetime{ExpiresIn: AssumedExpiresIn, Assumed: true}},
		{raw: `-5`, bad: true},
		{raw: `-0.5`, bad: true},
		{raw: `"soon"`, bad: true},
		{raw: `""`, bad: true},
		{raw: `true`, bad: true},
		{raw: `"1`, bad: true},
		{raw: `"NaN"`, bad: true},
		{raw: `"Inf"`, bad: true},
		{raw: `"0x10"`, bad: true},
		{raw: `{}`, bad: true},
		{raw: `[60]`, bad: true},
	}
	for _, tt := range tests {
		got, ok := ParseExpiresIn(json.RawMessage(tt.raw))
		if ok == tt.bad || (!tt.bad && got != tt.want) || (tt.bad && got != (Lifetime{})) {
			t.Errorf("ParseExpiresIn(%s) = (%+v, %v), want (%+v, %v)", tt.raw, got, ok, tt.want, !tt.bad)
		}
	}
	if AssumedExpiresIn <= 0 || AssumedExpiresIn > time.Hour || MaxExpiresIn != 24*time.Hour {
		t.Errorf("AssumedExpiresIn %v, MaxExpiresIn %v", AssumedExpiresIn, MaxExpiresIn)
	}
}

func TestParseTokenResponse(t *testing.T) {
	tests := []struct {
		body string
		want TokenResponse
		err  string
	}{
		{body: `{"access_token":"tok","token_type":"bearer","expires_in":3600,"scope":"s","refresh_token":"r"}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "bearer", Scope: "s", ExpiresIn: time.Hour}},
		{body: `{"access_token":"tok","expires_in":"60","refresh_token":123}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: time.Minute}},
		// Issue 8 scenario 7: a 2xx without a usable lifetime is still a token answer.
		{body: `{"access_token":"tok"}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: AssumedExpiresIn, LifetimeAssumed: true}},
		{body: `{"access_token":"tok","expires_in":null}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: AssumedExpiresIn, LifetimeAssumed: true}},
		{body: `{"access_token":"tok","expires_in":1799.75}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 1799750 * time.Millisecond}},
		// Issue 8 scenario 12: the same token at the end of its life, "expired now".
		{body: `{"access_token":"tok","expires_in":0}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 0}},
		// Issue 8 scenario 18: 68 years is capped, and says so.
		{body: `{"access_token":"tok","expires_in":2147483647}`,
			want: TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: MaxExpiresIn, LifetimeCapped: true}},
		{body: `<html>`, err: "not a token object"},
		{body: `{"access_token":` + testSecret + `}`, err: "not a token object"},
		{body: `{"access_token":"a b","expires_in":60}`, err: "access_token missing or unusable"},
		{body: `{"expires_in":60}`, err: "access_token missing or unusable"},
		{body: `{"access_token":"tok","expires_in":-1}`, err: "expires_in is not a non-negative number"},
		{body: `{"access_token":"tok","expires_in":"soon"}`, err: "expires_in is not a non-negative number"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got, err := ParseTokenResponse("api", "token", upstream.Response{Status: 201, Body: []byte(tt.body)})
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got (%+v, %v), want %+v", got, err, tt.want)
				}
				return
			}
			ue, ok := errors.AsType[*upstream.Error](err)
			if !ok || ue.Kind != upstream.Transient || ue.StatusCode != 201 || !strings.Contains(err.Error(), "malformed response: "+tt.err) {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), testSecret) || got != (TokenResponse{}) {
				t.Errorf("leaks or returns a partial token: %v", err)
			}
		})
	}
}

func TestGrantValueChecks(t *testing.T) {
	for v, want := range map[string]bool{
		"code-123._~+/=": true,
		"a b":            true, // VSCHAR includes the space
		"":               false,
		"a\n":            false,
		"a\tb":           false,
		"é":              false,
		"a\x7f":          false,
	} {
		if IsVSChars(v) != want {
			t.Errorf("IsVSChars(%q) = %v", v, !want)
		}
		err := CheckGrantArg("api", "ep", "refresh token", v)
		if (err == nil) != want || err != nil && !upstream.IsInvalid(err) {
			t.Errorf("CheckGrantArg(%q) = %v", v, err)
		}
		if err != nil && v != "" && strings.Contains(err.Error(), v) {
			t.Errorf("CheckGrantArg(%q) quotes the value: %v", v, err)
		}
	}
}
