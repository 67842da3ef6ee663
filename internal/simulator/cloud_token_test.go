package simulator

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCloudCodeExchangeClientAuth(t *testing.T) {
	tests := []struct {
		name string
		auth string // Authorization header
		form url.Values
	}{
		{"basic", basic(cloudID, cloudSecret), nil},
		{"basic with matching form client_id", basic(cloudID, cloudSecret), url.Values{"client_id": {cloudID}}},
		{"form", "", url.Values{"client_id": {cloudID}, "client_secret": {cloudSecret}}},
		{"form beside a non-Basic header", "Bearer whatever", url.Values{"client_id": {cloudID}, "client_secret": {cloudSecret}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, nil)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {f.code(cloudID, cloudCallback)}, "redirect_uri": {cloudCallback}}
			for k, v := range tt.form {
				form[k] = v
			}
			tb := tokensOf(t, f.cloudToken(tt.auth, form))
			if tb.ExpiresIn != 3600 {
				t.Fatalf("expires_in %d, want 3600", tb.ExpiresIn)
			}
			if !f.srv.ValidCloudAccessToken(tb.AccessToken) {
				t.Fatal("issued access token not valid")
			}
			if st := f.srv.CloudStats(); st.CodeExchanges != 1 || st.LiveRefreshTokens != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestCloudTokenClientAuthErrors(t *testing.T) {
	grant := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range grant {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name      string
		auth      string
		form      url.Values
		status    int
		code      string
		challenge bool // WWW-Authenticate: Basic expected
	}{
		{"no credentials", "", grant, 401, "invalid_client", false},
		{"basic wrong secret", basic(cloudID, "nope"), grant, 401, "invalid_client", true},
		{"basic unknown client", basic("nobody", cloudSecret), grant, 401, "invalid_client", true},
		{"basic other client's secret", basic(cloudID, cloudOtherSec), grant, 401, "invalid_client", true},
		{"basic empty secret", basic(cloudID, ""), grant, 401, "invalid_client", true},
		{"basic undecodable", "Basic !!!", grant, 401, "invalid_client", true},
		{"basic and another form client_id", basic(cloudID, cloudSecret), with("client_id", cloudOtherID), 401, "invalid_client", true},
		{"ThingSpace app credentials", basic(appKey, appSecret), grant, 401, "invalid_client", true},
		{"form wrong secret", "", with("client_id", cloudID, "client_secret", "nope"), 401, "invalid_client", false},
		{"form id without secret", "", with("client_id", cloudID), 401, "invalid_client", false},
		{"form secret without id", "", with("client_secret", cloudSecret), 401, "invalid_client", false},
		{"both methods", basic(cloudID, cloudSecret), with("client_id", cloudID, "client_secret", cloudSecret), 400, "invalid_request", false},
		{"bad credentials and no grant", basic(cloudID, "nope"), url.Values{}, 401, "invalid_client", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, nil)
			w := f.cloudToken(tt.auth, tt.form)
			desc := oauthErrorOf(t, w, tt.status, tt.code)
			if got := w.Header().Get("WWW-Authenticate"); (got != "") != tt.challenge || (tt.challenge && !strings.HasPrefix(got, "Basic ")) {
				t.Fatalf("WWW-Authenticate %q, want a Basic challenge: %v", got, tt.challenge)
			}
			if strings.Contains(w.Body.String(), cloudSecret) || strings.Contains(desc, "nope") {
				t.Fatalf("error echoes a secret: %s", w.Body)
			}
		})
	}
}

func TestCloudTokenRequestErrors(t *testing.T) {
	auth := basic(cloudID, cloudSecret)
	tests := []struct {
		name   string
		ctype  string // "" = form
		body   string
		status int
		code   string
	}{
		{"empty body", "", "", 400, "invalid_request"},
		{"missing grant_type", "", "code=x&redirect_uri=y", 400, "invalid_request"},
		{"client_credentials", "", "grant_type=client_credentials", 400, "unsupported_grant_type"},
		{"password", "", "grant_type=password&username=u&password=p", 400, "unsupported_grant_type"},
		{"code missing", "", "grant_type=authorization_code&redirect_uri=" + url.QueryEscape(cloudCallback), 400, "invalid_request"},
		{"redirect_uri missing", "", "grant_type=authorization_code&code=abc", 400, "invalid_request"},
		{"refresh_token missing", "", "grant_type=refresh_token", 400, "invalid_request"},
		{"JSON body", "application/json", `{"grant_type":"refresh_token","refresh_token":"x"}`, 400, "invalid_request"},
		{"unknown code", "", "grant_type=authorization_code&code=abc&redirect_uri=" + url.QueryEscape(cloudCallback), 401, "invalid_grant"},
		{"unknown refresh token", "", "grant_type=refresh_token&refresh_token=abc", 401, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, nil)
			r := formReq(cloudTokenPath, auth, tt.body)
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			oauthErrorOf(t, f.do(r), tt.status, tt.code)
			want := 0
			if tt.code == "invalid_grant" {
				want = 1
			}
			if st := f.srv.CloudStats(); st.InvalidGrants != want || st.CodeReuses+st.RefreshTokenReuses != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestCloudCodeRules(t *testing.T) {
	tests := []struct {
		name string
		// redeem presents the code (already issued to cloudID for
		// cloudCallback) in the way under test.
		redeem    func(f *fixture, code string) int
		wantReuse int
		// usable: the rightful exchange still works afterwards.
		usable bool
	}{
		{"used code", func(f *fixture, code string) int {
			tokensOf(f.t, f.exchange(code))
			return f.exchange(code).Code
		}, 1, false},
		{"expired code", func(f *fixture, code string) int {
			f.clk.Step(DefaultCloudCodeLifetime)
			return f.exchange(code).Code
		}, 0, false},
		{"another client", func(f *fixture, code string) int {
			return f.cloudToken(basic(cloudOtherID, cloudOtherSec), url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cloudCallback},
			}).Code
		}, 0, true},
		{"another redirect_uri", func(f *fixture, code string) int {
			return f.cloudToken(basic(cloudID, cloudSecret), url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {strings.ToLower(cloudCallback)},
			}).Code
		}, 0, true},
		{"code as refresh token", func(f *fixture, code string) int {
			return f.refresh(code).Code
		}, 0, true},
		{"revoked before exchange", func(f *fixture, code string) int {
			if n := f.srv.RevokeCloudGrants(cloudID); n != 1 {
				f.t.Fatalf("revoked %d grants, want the pending one", n)
			}
			return f.exchange(code).Code
		}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, nil)
			code := f.code(cloudID, cloudCallback)
			if got := tt.redeem(f, code); got != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", got)
			}
			st := f.srv.CloudStats()
			if st.CodeReuses != tt.wantReuse || st.InvalidGrants != 1 {
				t.Fatalf("stats %+v, want %d reuse and 1 invalid grant", st, tt.wantReuse)
			}
			if w := f.exchange(code); (w.Code == http.StatusOK) != tt.usable {
				t.Fatalf("exchange afterwards: status %d, want usable %v", w.Code, tt.usable)
			}
		})
	}
}

func TestCloudCodeLifetime(t *testing.T) {
	f := newCloudFixture(t, func(c *Config) { c.CloudCodeLifetime = 30 * time.Second })
	code := f.code(cloudID, cloudCallback)
	f.clk.Step(30*time.Second - time.Millisecond)
	tokensOf(t, f.exchange(code))
	code = f.code(cloudID, cloudCallback)
	f.clk.Step(30 * time.Second)
	oauthErrorOf(t, f.exchange(code), 401, "invalid_grant")
}

func TestCloudRefreshRotates(t *testing.T) {
	f := newCloudFixture(t, nil)
	first := f.grant()
	f.clk.Step(time.Minute)

	second := tokensOf(t, f.refresh(first.RefreshToken))
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not rotate both tokens")
	}
	if second.ExpiresIn != 3600 {
		t.Fatalf("expires_in %d", second.ExpiresIn)
	}
	// The old access token lives out its own hour.
	if !f.srv.ValidCloudAccessToken(first.AccessToken) || !f.srv.ValidCloudAccessToken(second.AccessToken) {
		t.Fatal("rotation ended an access token")
	}
	if st := f.srv.CloudStats(); st.LiveRefreshTokens != 1 || st.Refreshes != 1 {
		t.Fatalf("stats %+v", st)
	}

	// The old refresh token stops working, and presenting it is a reuse.
	oauthErrorOf(t, f.refresh(first.RefreshToken), 401, "invalid_grant")
	st := f.srv.CloudStats()
	if st.RefreshTokenReuses != 1 || st.InvalidGrants != 1 || st.LiveRefreshTokens != 1 {
		t.Fatalf("after reuse: %+v", st)
	}
	// A reuse does not end the grant: the newest token still works.
	third := tokensOf(t, f.refresh(second.RefreshToken))

	f.clk.Step(time.Hour - time.Minute)
	if f.srv.ValidCloudAccessToken(first.AccessToken) {
		t.Fatal("first access token outlived its hour")
	}
	if !f.srv.ValidCloudAccessToken(third.AccessToken) {
		t.Fatal("newest access token ended early")
	}
	if st := f.srv.CloudStats(); st.Refreshes != 2 || st.CodeExchanges != 1 || st.LiveRefreshTokens != 1 {
		t.Fatalf("final stats %+v", st)
	}
}

func TestCloudRefreshTokenOfAnotherClient(t *testing.T) {
	f := newCloudFixture(t, nil)
	tb := f.grant()
	w := f.cloudToken(basic(cloudOtherID, cloudOtherSec), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tb.RefreshToken}})
	oauthErrorOf(t, w, 401, "invalid_grant")
	// Not used up, not a reuse.
	tokensOf(t, f.refresh(tb.RefreshToken))
	if st := f.srv.CloudStats(); st.RefreshTokenReuses != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloudLifetimes(t *testing.T) {
	f := newCloudFixture(t, func(c *Config) {
		c.CloudAccessTokenLifetime = 90 * time.Second
		c.CloudRefreshTokenLifetime = 10 * time.Minute
	})
	tb := f.grant()
	if tb.ExpiresIn != 90 {
		t.Fatalf("expires_in %d, want configured 90", tb.ExpiresIn)
	}
	f.clk.Step(90*time.Second - time.Millisecond)
	if !f.srv.ValidCloudAccessToken(tb.AccessToken) {
		t.Fatal("access token dead before its expiry")
	}
	f.clk.Step(time.Millisecond)
	if f.srv.ValidCloudAccessToken(tb.AccessToken) {
		t.Fatal("access token alive at its expiry")
	}
	oauthErrorOf(t, f.cloudAccount("Bearer "+tb.AccessToken), 401, "invalid_token")

	// The refresh lifetime runs from each refresh token's own issue: rotating
	// every 8 minutes keeps the grant alive well past 10 minutes.
	rt := tb.RefreshToken
	for range 3 {
		f.clk.Step(8 * time.Minute)
		rt = tokensOf(t, f.refresh(rt)).RefreshToken
	}
	f.clk.Step(10*time.Minute - time.Millisecond)
	if st := f.srv.CloudStats(); st.LiveRefreshTokens != 1 {
		t.Fatalf("refresh token dead before its expiry: %+v", st)
	}
	f.clk.Step(time.Millisecond)
	if st := f.srv.CloudStats(); st.LiveRefreshTokens != 0 {
		t.Fatalf("refresh token alive at its expiry: %+v", st)
	}
	oauthErrorOf(t, f.refresh(rt), 401, "invalid_grant")
	if st := f.srv.CloudStats(); st.RefreshTokenReuses != 0 || st.InvalidGrants != 1 {
		t.Fatalf("an expired token is not a reuse: %+v", st)
	}
}

func TestCloudDefaultRefreshLifetime(t *testing.T) {
	f := newCloudFixture(t, nil)
	tb := f.grant()
	f.clk.Step(14*24*time.Hour - time.Second)
	tb = tokensOf(t, f.refresh(tb.RefreshToken))
	f.clk.Step(14 * 24 * time.Hour)
	oauthErrorOf(t, f.refresh(tb.RefreshToken), 401, "invalid_grant")
}

func TestCloudConcurrentRefresh(t *testing.T) {
	f := newCloudFixture(t, nil)
	tb := f.grant()
	const n = 20
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() { codes[i] = f.refresh(tb.RefreshToken).Code })
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == http.StatusOK {
			ok++
		} else if c != http.StatusUnauthorized {
			t.Fatalf("status %d", c)
		}
	}
	st := f.srv.CloudStats()
	if ok != 1 || st.Refreshes != 1 || st.RefreshTokenReuses != n-1 || st.LiveRefreshTokens != 1 {
		t.Fatalf("%d of %d refreshes won, stats %+v; want exactly one", ok, n, st)
	}
}
