package simulator

import (
	"net/url"
	"strings"
	"testing"
)

func TestCloudAuthorizeRedirects(t *testing.T) {
	tests := []struct {
		name     string
		deny     bool
		q        url.Values
		wantBase string // Location up to the added parameters
		wantKeys []string
		state    string // expected state ("" = none)
	}{
		{"code and state, callback query kept", false, authQuery(cloudID, cloudCallback, "xyz 1/2"),
			cloudCallback + "&", []string{"code", "state", "tenant"}, "xyz 1/2"},
		{"no state, none sent back", false, authQuery(cloudOtherID, cloudOtherCB, ""),
			cloudOtherCB + "?", []string{"code"}, ""},
		{"deny consent", true, authQuery(cloudID, cloudCallback, "s"),
			cloudCallback + "&", []string{"error", "error_description", "state", "tenant"}, "s"},
		{"deny consent without state", true, authQuery(cloudOtherID, cloudOtherCB, ""),
			cloudOtherCB + "?", []string{"error", "error_description"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, func(c *Config) { c.CloudDenyConsent = tt.deny })
			w := f.authorize(tt.q)
			loc := w.Header().Get("Location")
			if !strings.HasPrefix(loc, tt.wantBase) {
				t.Fatalf("Location %q does not extend %q", loc, tt.wantBase)
			}
			got := redirectOf(t, w).Query()
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			if len(keys) != len(tt.wantKeys) {
				t.Fatalf("redirect parameters %v, want %v", got, tt.wantKeys)
			}
			for _, k := range tt.wantKeys {
				if !got.Has(k) {
					t.Fatalf("redirect parameters %v lack %q", got, k)
				}
			}
			if got.Get("state") != tt.state {
				t.Fatalf("state %q, want %q", got.Get("state"), tt.state)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("a redirect carrying a code must not be cacheable")
			}
			st := f.srv.CloudStats()
			if tt.deny {
				if got.Get("error") != "access_denied" || st.Denials != 1 || st.CodesIssued != 0 {
					t.Fatalf("deny: %v, stats %+v", got, st)
				}
				return
			}
			if !uuidRE.MatchString(got.Get("code")) || st.CodesIssued != 1 || st.Denials != 0 {
				t.Fatalf("code %q, stats %+v", got.Get("code"), st)
			}
		})
	}
}

func TestCloudAuthorizeSwitchesConsent(t *testing.T) {
	f := newCloudFixture(t, nil)
	f.srv.SetCloudDenyConsent(true)
	if q := redirectOf(t, f.authorize(authQuery(cloudID, cloudCallback, ""))).Query(); q.Get("error") != "access_denied" || q.Has("code") {
		t.Fatalf("denied: %v", q)
	}
	f.srv.SetCloudDenyConsent(false)
	f.code(cloudID, cloudCallback)
	if st := f.srv.CloudStats(); st.Denials != 1 || st.CodesIssued != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloudAuthorizeCodesAreRandom(t *testing.T) {
	f := newCloudFixture(t, nil)
	seen := map[string]bool{}
	for range 50 {
		c := f.code(cloudID, cloudCallback)
		if seen[c] {
			t.Fatal("a code came twice")
		}
		seen[c] = true
		if url.QueryEscape(c) != c {
			t.Fatalf("code %q is not URL-safe", c)
		}
	}
}

func TestCloudAuthorizeErrors(t *testing.T) {
	with := func(mut func(url.Values)) url.Values {
		q := authQuery(cloudID, cloudCallback, "s")
		mut(q)
		return q
	}
	tests := []struct {
		name   string
		q      url.Values
		status int
		code   string
	}{
		{"missing client_id", with(func(q url.Values) { q.Del("client_id") }), 400, "invalid_request"},
		{"missing redirect_uri", with(func(q url.Values) { q.Del("redirect_uri") }), 400, "invalid_request"},
		{"missing response_type", with(func(q url.Values) { q.Del("response_type") }), 400, "invalid_request"},
		{"empty client_id", with(func(q url.Values) { q.Set("client_id", "") }), 400, "invalid_request"},
		{"response_type token", with(func(q url.Values) { q.Set("response_type", "token") }), 400, "invalid_request"},
		{"response_type CODE", with(func(q url.Values) { q.Set("response_type", "CODE") }), 400, "invalid_request"},
		{"repeated redirect_uri", with(func(q url.Values) { q.Add("redirect_uri", cloudCallback) }), 400, "invalid_request"},
		{"repeated state", with(func(q url.Values) { q.Add("state", "t") }), 400, "invalid_request"},
		{"unknown client", with(func(q url.Values) { q.Set("client_id", "nobody") }), 401, "invalid_client"},
		{"client id case", with(func(q url.Values) { q.Set("client_id", strings.ToUpper(cloudID)) }), 401, "invalid_client"},
		{"other client's callback", with(func(q url.Values) { q.Set("redirect_uri", cloudOtherCB) }), 400, "invalid_request"},
		{"path case differs", with(func(q url.Values) {
			q.Set("redirect_uri", strings.Replace(cloudCallback, "Callback", "callback", 1))
		}), 400, "invalid_request"},
		{"host case differs", with(func(q url.Values) {
			q.Set("redirect_uri", strings.Replace(cloudCallback, "app.example.com", "APP.example.com", 1))
		}), 400, "invalid_request"},
		{"scheme case differs", with(func(q url.Values) {
			q.Set("redirect_uri", strings.Replace(cloudCallback, "https", "HTTPS", 1))
		}), 400, "invalid_request"},
		{"trailing slash", with(func(q url.Values) {
			q.Set("redirect_uri", strings.Replace(cloudCallback, "Callback?", "Callback/?", 1))
		}), 400, "invalid_request"},
		{"query dropped", with(func(q url.Values) {
			q.Set("redirect_uri", strings.TrimSuffix(cloudCallback, "?tenant=a"))
		}), 400, "invalid_request"},
		{"query added", with(func(q url.Values) { q.Set("redirect_uri", cloudCallback+"&x=1") }), 400, "invalid_request"},
		{"default port spelled out", with(func(q url.Values) {
			q.Set("redirect_uri", strings.Replace(cloudCallback, "example.com/", "example.com:443/", 1))
		}), 400, "invalid_request"},
		{"percent-encoded path", with(func(q url.Values) {
			q.Set("redirect_uri", strings.Replace(cloudCallback, "Oauth", "%4Fauth", 1))
		}), 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, nil)
			oauthErrorOf(t, f.authorize(tt.q), tt.status, tt.code)
			if st := f.srv.CloudStats(); st != (CloudStats{}) {
				t.Fatalf("a refused authorize changed the stats: %+v", st)
			}
		})
	}
}
