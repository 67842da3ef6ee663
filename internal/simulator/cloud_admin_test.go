package simulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCloudFaults(t *testing.T) {
	tests := []struct {
		name      string
		faults    Faults
		status    int
		code      string
		wantRetry string
	}{
		{"503 with Retry-After", Faults{Rate: 1, RetryAfter: 2 * time.Second}, 503, "temporarily_unavailable", "2"},
		{"429 with Retry-After", Faults{Rate: 1, Status: 429, RetryAfter: 1500 * time.Millisecond}, 429, "rate_limit_exceeded", "2"},
		{"429 without", Faults{Rate: 1, Status: 429}, 429, "rate_limit_exceeded", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCloudFixture(t, nil)
			tb := f.grant()
			f.srv.ResetStats()
			f.srv.SetFaults(tt.faults)

			for _, w := range []*httptest.ResponseRecorder{
				f.authorize(authQuery(cloudID, cloudCallback, "")),
				f.refresh(tb.RefreshToken),
				f.cloudAccount("Bearer " + tb.AccessToken),
			} {
				oauthErrorOf(t, w, tt.status, tt.code)
				if got := w.Header().Get("Retry-After"); got != tt.wantRetry {
					t.Fatalf("Retry-After %q, want %q", got, tt.wantRetry)
				}
			}
			want := map[string]map[string]int{
				cloudAuthorizeRoute: {strconv.Itoa(tt.status): 1},
				cloudTokenRoute:     {strconv.Itoa(tt.status): 1},
				cloudAccountRoute:   {strconv.Itoa(tt.status): 1},
			}
			if got := f.srv.Stats().Requests; !reflect.DeepEqual(got, want) {
				t.Fatalf("stats %v, want %v", got, want)
			}
			// Faulted requests never reach the handlers: nothing was issued
			// or rotated, so the old refresh token still works.
			if st := f.srv.CloudStats(); st.CodesIssued != 0 || st.Refreshes != 0 {
				t.Fatalf("a faulted request did work: %+v", st)
			}
			f.srv.SetFaults(Faults{})
			tokensOf(t, f.refresh(tb.RefreshToken))
		})
	}
}

func TestCloudLatencyBeforeProcessing(t *testing.T) {
	f := newCloudFixture(t, nil)
	tb := f.grant()
	f.srv.SetFaults(Faults{Latency: time.Second})
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- f.refresh(tb.RefreshToken) }()
	waitForWaiter(t, f)
	if st := f.srv.CloudStats(); st.Refreshes != 0 {
		t.Fatal("latency must come before the refresh is processed")
	}
	f.clk.Step(time.Second)
	tokensOf(t, <-done)
}

func TestCloudTokenDelayStillRotates(t *testing.T) {
	f := newCloudFixture(t, func(c *Config) { c.CloudTokenResponseDelay = 2 * time.Second })
	code := f.code(cloudID, cloudCallback)
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- f.exchange(code) }()
	waitForWaiter(t, f)
	f.clk.Step(2 * time.Second)
	tb := tokensOf(t, <-done)

	// Held: the refresh is already processed while the client still waits.
	go func() { done <- f.refresh(tb.RefreshToken) }()
	waitForWaiter(t, f)
	if st := f.srv.CloudStats(); st.Refreshes != 1 {
		t.Fatalf("refresh not processed before the delay: %+v", st)
	}
	f.clk.Step(time.Second)
	select {
	case <-done:
		t.Fatal("response sent before the delay elapsed")
	case <-time.After(20 * time.Millisecond):
	}
	f.clk.Step(time.Second)
	late := tokensOf(t, <-done)
	if late.RefreshToken == tb.RefreshToken {
		t.Fatal("late response did not rotate")
	}

	// Switched off, answers come at once.
	f.srv.SetCloudTokenResponseDelay(0)
	tokensOf(t, f.refresh(late.RefreshToken))
	if f.clk.HasWaiters() {
		t.Fatal("a request waited with the delay off")
	}
}

// TestCloudTokenDelayClientGivesUp is the case the switch exists for: the
// server rotated, the client never saw the answer, and its old refresh token
// is now a reuse.
func TestCloudTokenDelayClientGivesUp(t *testing.T) {
	f := newCloudFixture(t, nil)
	tb := f.grant()
	f.srv.ResetStats()
	f.srv.SetCloudTokenResponseDelay(time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		r := formReq(cloudTokenPath, basic(cloudID, cloudSecret), "grant_type=refresh_token&refresh_token="+tb.RefreshToken)
		f.srv.ServeHTTP(w, r.WithContext(ctx))
		done <- w
	}()
	waitForWaiter(t, f)
	cancel()
	select {
	case w := <-done:
		if w.Body.Len() != 0 {
			t.Fatalf("a response reached the client that gave up: %s", w.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled request still held")
	}
	if got := f.srv.Stats().Count(cloudTokenRoute, statusClientClosed); got != 1 {
		t.Fatalf("stats %v, want one %d", f.srv.Stats().Requests, statusClientClosed)
	}

	f.srv.SetCloudTokenResponseDelay(0)
	oauthErrorOf(t, f.refresh(tb.RefreshToken), 401, "invalid_grant")
	if st := f.srv.CloudStats(); st.Refreshes != 1 || st.RefreshTokenReuses != 1 || st.LiveRefreshTokens != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloudStatsReset(t *testing.T) {
	f := newCloudFixture(t, func(c *Config) { c.CloudDenyConsent = true })
	f.authorize(authQuery(cloudID, cloudCallback, ""))
	f.srv.SetCloudDenyConsent(false)
	tb := f.grant()
	tokensOf(t, f.refresh(tb.RefreshToken))
	f.refresh(tb.RefreshToken)
	want := CloudStats{CodesIssued: 1, Denials: 1, CodeExchanges: 1, Refreshes: 1, RefreshTokenReuses: 1, InvalidGrants: 1, LiveRefreshTokens: 1}
	if st := f.srv.CloudStats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	f.srv.ResetStats()
	if st := f.srv.CloudStats(); st != (CloudStats{LiveRefreshTokens: 1}) {
		t.Fatalf("after reset %+v: counters zero, live tokens kept", st)
	}
}

func TestCloudSweepForgets(t *testing.T) {
	f := newCloudFixture(t, func(c *Config) { c.CloudRefreshTokenLifetime = time.Hour })
	tb := f.grant()
	used := f.code(cloudID, cloudCallback)
	tokensOf(t, f.exchange(used))
	rotated := tb.RefreshToken
	tokensOf(t, f.refresh(rotated))

	// Within the tombstone time, reuses are recognised as such.
	f.clk.Step(time.Hour + cloudTombstoneTTL - time.Second)
	f.exchange(used)
	f.refresh(rotated)
	if st := f.srv.CloudStats(); st.CodeReuses != 1 || st.RefreshTokenReuses != 1 {
		t.Fatalf("stats %+v", st)
	}
	f.clk.Step(time.Second)
	f.grant() // issuing sweeps
	f.srv.cloud.mu.Lock()
	sizes := []int{len(f.srv.cloud.codes), len(f.srv.cloud.refresh), len(f.srv.cloud.access)}
	f.srv.cloud.mu.Unlock()
	if !reflect.DeepEqual(sizes, []int{1, 1, 1}) {
		t.Fatalf("codes, refresh and access tokens kept: %v; want only the new grant's", sizes)
	}
}

// TestCloudAdminOverHTTP drives the /admin/cloud API through a real listener,
// as the standalone binary is used.
func TestCloudAdminOverHTTP(t *testing.T) {
	srv := New(Config{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	noRedirect := *ts.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	call := func(method, path, body string, want int) string {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(path, "/cloud/") && method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("web", "s3cret")
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, b)
		}
		if resp.StatusCode == http.StatusFound {
			return resp.Header.Get("Location")
		}
		return string(b)
	}
	const cb = "http://127.0.0.1:9/cb"
	authorize := "/cloud/1/oauth2/authorize?" + authQuery("web", cb, "st").Encode()

	call("GET", authorize, "", 401) // not registered yet
	call("PUT", "/admin/cloud/apps/web", `{"secret":"s3cret","callbackURL":"`+cb+`"}`, 204)
	loc := call("GET", authorize, "", 302)
	u, _ := url.Parse(loc)
	body := call("POST", cloudTokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "redirect_uri": {cb}}.Encode(), 200)
	var tb cloudTokens
	if err := json.Unmarshal([]byte(body), &tb); err != nil {
		t.Fatal(err)
	}

	// Deny consent on and off.
	call("PUT", "/admin/cloud/consent", `{"deny":true}`, 204)
	if loc := call("GET", authorize, "", 302); !strings.Contains(loc, "error=access_denied") {
		t.Fatalf("denied Location %s", loc)
	}
	call("PUT", "/admin/cloud/consent", `{"deny":false}`, 204)
	call("GET", authorize, "", 302)

	// Token delay: set, echoed by behaviour in TestCloudTokenDelay*, cleared.
	call("PUT", "/admin/cloud/token-delay", `{"delay":"1ms"}`, 204)
	body = call("POST", cloudTokenPath, "grant_type=refresh_token&refresh_token="+tb.RefreshToken, 200)
	if err := json.Unmarshal([]byte(body), &tb); err != nil {
		t.Fatal(err)
	}
	call("PUT", "/admin/cloud/token-delay", `{"delay":"0s"}`, 204)

	// Two grants: the exchanged one and the last authorize's pending code.
	if got := call("POST", "/admin/cloud/apps/web/revoke", "", 200); got != `{"revoked":2}`+"\n" {
		t.Fatalf("revoke: %s", got)
	}
	if srv.ValidCloudAccessToken(tb.AccessToken) {
		t.Fatal("revoke over HTTP left the access token alive")
	}
	call("POST", "/admin/cloud/apps/nobody/revoke", "", 404)

	var st CloudStats
	if err := json.Unmarshal([]byte(call("GET", "/admin/cloud/stats", "", 200)), &st); err != nil {
		t.Fatal(err)
	}
	want := CloudStats{CodesIssued: 2, Denials: 1, CodeExchanges: 1, Refreshes: 1}
	if st != want {
		t.Fatalf("cloud stats %+v, want %+v", st, want)
	}
	raw := call("GET", "/admin/cloud/stats", "", 200)
	for _, k := range []string{"codesIssued", "denials", "codeExchanges", "codeReuses", "refreshes", "refreshTokenReuses", "invalidGrants", "liveRefreshTokens"} {
		if !strings.Contains(raw, `"`+k+`":`) {
			t.Fatalf("cloud stats JSON lacks %s: %s", k, raw)
		}
	}

	// The request stats count Cloud routes by status; admin calls are not counted.
	var stats Stats
	if err := json.Unmarshal([]byte(call("GET", "/admin/stats", "", 200)), &stats); err != nil {
		t.Fatal(err)
	}
	wantReq := map[string]map[string]int{
		cloudAuthorizeRoute: {"401": 1, "302": 3},
		cloudTokenRoute:     {"200": 2},
	}
	if !reflect.DeepEqual(stats.Requests, wantReq) {
		t.Fatalf("stats %v, want %v", stats.Requests, wantReq)
	}
	call("POST", "/admin/stats/reset", "", 204)
	if err := json.Unmarshal([]byte(call("GET", "/admin/cloud/stats", "", 200)), &st); err != nil || st != (CloudStats{}) {
		t.Fatalf("cloud stats after reset %+v, %v", st, err)
	}

	for _, bad := range []struct{ method, path, body string }{
		{"PUT", "/admin/cloud/apps/web", `{"secret":"","callbackURL":"` + cb + `"}`},
		{"PUT", "/admin/cloud/apps/web", `{"secret":"s","callbackURL":"/cb"}`},
		{"PUT", "/admin/cloud/apps/web", `{"secret":"s","callbackURL":"` + cb + `#x"}`},
		{"PUT", "/admin/cloud/apps/a:b", `{"secret":"s","callbackURL":"` + cb + `"}`},
		{"PUT", "/admin/cloud/apps/web", `{"secret":"s","callback":"` + cb + `"}`},
		{"PUT", "/admin/cloud/consent", `{"deny":"yes"}`},
		{"PUT", "/admin/cloud/consent", `{"denied":true}`},
		{"PUT", "/admin/cloud/token-delay", `{"delay":"-1s"}`},
		{"PUT", "/admin/cloud/token-delay", `{"delay":"soon"}`},
		{"PUT", "/admin/cloud/token-delay", `{"delay":2}`},
	} {
		if got := call(bad.method, bad.path, bad.body, 400); !strings.Contains(got, `"error"`) {
			t.Fatalf("%s %s: body %s", bad.method, bad.path, got)
		}
	}
	// Rejected PUTs changed nothing: the app keeps its secret.
	call("GET", authorize, "", 302)
}
