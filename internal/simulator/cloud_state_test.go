package simulator

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCloudRevoke(t *testing.T) {
	f := newCloudFixture(t, nil)
	a1, a2 := f.grant(), f.grant()
	a1 = tokensOf(t, f.refresh(a1.RefreshToken)) // a rotated grant is still one grant
	other := tokensOf(t, f.cloudToken(basic(cloudOtherID, cloudOtherSec), url.Values{
		"grant_type": {"authorization_code"}, "code": {f.code(cloudOtherID, cloudOtherCB)}, "redirect_uri": {cloudOtherCB},
	}))
	f.clk.Step(time.Minute)

	if n := f.srv.RevokeCloudGrants(cloudID); n != 2 {
		t.Fatalf("revoked %d grants, want 2", n)
	}
	for _, tb := range []cloudTokens{a1, a2} {
		if f.srv.ValidCloudAccessToken(tb.AccessToken) {
			t.Fatal("access token survived revocation")
		}
		oauthErrorOf(t, f.refresh(tb.RefreshToken), 401, "invalid_grant")
	}
	if !f.srv.ValidCloudAccessToken(other.AccessToken) {
		t.Fatal("another client's grant was revoked")
	}
	st := f.srv.CloudStats()
	if st.LiveRefreshTokens != 1 || st.RefreshTokenReuses != 0 || st.InvalidGrants != 2 {
		t.Fatalf("stats %+v", st)
	}
	if n := f.srv.RevokeCloudGrants(cloudID); n != 0 {
		t.Fatalf("second revoke ended %d grants", n)
	}
	if n := f.srv.RevokeCloudGrants("nobody"); n != 0 {
		t.Fatalf("unknown client revoked %d", n)
	}

	// The person can authorize the app again.
	fresh := f.grant()
	if !f.srv.ValidCloudAccessToken(fresh.AccessToken) {
		t.Fatal("new grant after revocation not valid")
	}
}

func TestCloudRevokeSkipsDeadGrants(t *testing.T) {
	f := newCloudFixture(t, func(c *Config) {
		c.CloudAccessTokenLifetime = time.Minute
		c.CloudRefreshTokenLifetime = time.Hour
	})
	f.grant()
	f.code(cloudID, cloudCallback) // never exchanged
	f.clk.Step(time.Hour)
	if n := f.srv.RevokeCloudGrants(cloudID); n != 0 {
		t.Fatalf("revoked %d dead grants", n)
	}
}

func TestCloudAccount(t *testing.T) {
	f := newCloudFixture(t, nil)
	q := authQuery(cloudID, cloudCallback, "")
	q.Set("deviceid", "Android")
	code := redirectOf(t, f.authorize(q)).Query().Get("code")
	tb := tokensOf(t, f.exchange(code))
	plain := f.grant()

	tests := []struct {
		name string
		auth string
		want string // body, "" = 401
	}{
		{"with device", "Bearer " + tb.AccessToken, `{"clientId":"cloud-client","deviceId":"Android"}`},
		{"without device", "Bearer " + plain.AccessToken, `{"clientId":"cloud-client"}`},
		{"lower-case scheme", "bearer " + tb.AccessToken, `{"clientId":"cloud-client","deviceId":"Android"}`},
		{"no header", "", ""},
		{"unknown token", "Bearer nope", ""},
		{"refresh token as bearer", "Bearer " + tb.RefreshToken, ""},
		{"basic", basic(cloudID, cloudSecret), ""},
		{"ThingSpace token", "Bearer " + f.token(appKey, appSecret).AccessToken, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.cloudAccount(tt.auth)
			if tt.want == "" {
				oauthErrorOf(t, w, 401, "invalid_token")
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
					t.Fatalf("WWW-Authenticate %q", got)
				}
				return
			}
			if w.Code != 200 || strings.TrimSpace(w.Body.String()) != tt.want {
				t.Fatalf("status %d body %s, want %s", w.Code, w.Body, tt.want)
			}
		})
	}
}

func TestValidateCloudApp(t *testing.T) {
	tests := []struct {
		key  string
		app  CloudApp
		want string // substring of the error, "" = valid
	}{
		{"k", CloudApp{"s", "https://x.example/cb"}, ""},
		{"k", CloudApp{"s", "http://127.0.0.1:8080/cb?a=b"}, ""},
		{"k", CloudApp{"s", "com.example.app:/oauth"}, ""},
		{"", CloudApp{"s", "https://x.example/cb"}, "client id"},
		{"a:b", CloudApp{"s", "https://x.example/cb"}, "client id"},
		{"k", CloudApp{"", "https://x.example/cb"}, "secret"},
		{"k", CloudApp{"s", ""}, "callback"},
		{"k", CloudApp{"s", "/relative/cb"}, "callback"},
		{"k", CloudApp{"s", "https://x.example/cb#frag"}, "callback"},
		{"k", CloudApp{"s", "https://x.example/%zz"}, "callback"},
	}
	for _, tt := range tests {
		err := ValidateCloudApp(tt.key, tt.app)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q %+v: unexpected error %v", tt.key, tt.app, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q %+v: error %v, want one about %s", tt.key, tt.app, err, tt.want)
		}
	}
	if err := ValidateCloudApp("k", CloudApp{"TOPSECRET", ""}); err == nil || strings.Contains(err.Error(), "TOPSECRET") {
		t.Fatalf("error %v quotes the secret", err)
	}
}
