package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStatsCounting(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret).AccessToken
	f.token(appKey, appSecret)
	f.do(formReq(tsTokenPath, "", "grant_type=client_credentials"))
	f.do(formReq(tsTokenPath, basic(appKey, appSecret), ""))
	f.revoke(appKey, appSecret, tok)
	f.do(httptest.NewRequest(http.MethodGet, tsTokenPath, nil))
	f.do(httptest.NewRequest(http.MethodGet, "/api/x/y", nil))
	f.do(httptest.NewRequest(http.MethodGet, "/nowhere", nil))
	f.srv.SetFaults(Faults{Rate: 1, Status: 429})
	f.do(formReq(tsRevokePath, basic(appKey, appSecret), "token=x"))
	// Admin traffic is not counted.
	f.do(httptest.NewRequest(http.MethodGet, "/admin/stats", nil))
	f.do(httptest.NewRequest(http.MethodGet, "/healthz", nil))

	want := map[string]map[string]int{
		tokenRoute:  {"200": 2, "401": 1, "400": 1},
		revokeRoute: {"200": 1, "429": 1},
		"GET /api/": {"400": 2},
		"GET /":     {"404": 1},
	}
	st := f.srv.Stats()
	if !reflect.DeepEqual(st.Requests, want) {
		t.Fatalf("stats\n got %v\nwant %v", st.Requests, want)
	}
	if st.Total(tokenRoute) != 4 {
		t.Fatalf("Total = %d, want 4", st.Total(tokenRoute))
	}

	// The snapshot is the caller's: mutating it must not touch the server.
	st.Requests[tokenRoute]["200"] = 99
	if f.srv.Stats().Count(tokenRoute, 200) != 2 {
		t.Fatal("Stats() shares memory with the server")
	}

	f.srv.ResetStats()
	if n := len(f.srv.Stats().Requests); n != 0 {
		t.Fatalf("after reset %d routes remain", n)
	}
	f.srv.SetFaults(Faults{})
	f.token(appKey, appSecret)
	if got := f.srv.Stats().Requests; !reflect.DeepEqual(got, map[string]map[string]int{tokenRoute: {"200": 1}}) {
		t.Fatalf("counting after reset: %v", got)
	}
}

// TestAdminOverHTTP drives the admin API through a real listener, as the
// standalone binary is used.
func TestAdminOverHTTP(t *testing.T) {
	srv := New(Config{Apps: map[string]string{appKey: appSecret}})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	call := func(method, path, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(path, "/api/") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(appKey, appSecret)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	expect := func(resp *http.Response, body string, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
		}
	}

	resp, body := call("GET", "/healthz", "")
	expect(resp, body, 200)

	resp, body = call("POST", tsTokenPath, "grant_type=client_credentials")
	expect(resp, body, 200)
	var tok tokenBody
	if err := json.Unmarshal([]byte(body), &tok); err != nil {
		t.Fatal(err)
	}

	// Revoke over the wire: empty body, header present.
	resp, body = call("POST", tsRevokePath, "grant_type=client_credentials&token="+url.QueryEscape(tok.AccessToken))
	expect(resp, body, 200)
	if body != "" || resp.Header.Get(RevokedTokenHeader) != tok.AccessToken {
		t.Fatalf("revoke: body %q header %q", body, resp.Header.Get(RevokedTokenHeader))
	}

	resp, body = call("GET", "/admin/stats", "")
	expect(resp, body, 200)
	var raw map[string]map[string]map[string]int
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatalf("stats shape: %v in %s", err, body)
	}
	if raw["requests"][tokenRoute]["200"] != 1 || raw["requests"][revokeRoute]["200"] != 1 {
		t.Fatalf("stats %s", body)
	}

	resp, body = call("POST", "/admin/stats/reset", "")
	expect(resp, body, 204)
	if _, body = call("GET", "/admin/stats", ""); body != "{\"requests\":{}}\n" {
		t.Fatalf("stats after reset: %s", body)
	}

	// Faults: the documented example body, then a request that gets it.
	resp, body = call("PUT", "/admin/faults", `{"rate":1,"status":429,"retryAfter":"2s","latency":"0s"}`)
	expect(resp, body, 200)
	if body != `{"rate":1,"status":429,"retryAfter":"2s","latency":"0s"}`+"\n" {
		t.Fatalf("PUT faults echoed %s", body)
	}
	resp, body = call("POST", tsTokenPath, "grant_type=client_credentials")
	expect(resp, body, 429)
	if resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	resp, body = call("GET", "/admin/faults", "")
	expect(resp, body, 200)
	if !strings.Contains(body, `"status":429`) {
		t.Fatalf("GET faults %s", body)
	}
	for _, bad := range []string{
		`{"rate":2}`,
		`{"rate":1,"status":500}`,
		`{"rate":1,"retryAfter":"soon"}`,
		`{"rate":1,"latency":"-1s"}`,
		`{"rat":1}`,
		`not json`,
	} {
		resp, body = call("PUT", "/admin/faults", bad)
		expect(resp, body, 400)
		if !strings.Contains(body, `"error"`) {
			t.Fatalf("bad faults %s: body %s", bad, body)
		}
	}
	if srv.Faults().Status != 429 {
		t.Fatal("a rejected PUT changed the faults")
	}
	resp, body = call("PUT", "/admin/faults", `{}`)
	expect(resp, body, 200)
	if f := srv.Faults(); f.Rate != 0 || f.Status != 503 {
		t.Fatalf("PUT {} should clear faults, got %+v", f)
	}

	// Apps.
	resp, body = call("PUT", "/admin/apps/new-app", `{"secret":"s3cret"}`)
	expect(resp, body, 204)
	newApp := func() int {
		req, _ := http.NewRequest("POST", ts.URL+tsTokenPath, strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("new-app", "s3cret")
		r, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if got := newApp(); got != 200 {
		t.Fatalf("new app token: %d", got)
	}
	for _, bad := range []struct{ path, body string }{
		{"/admin/apps/x", `{"secret":""}`},
		{"/admin/apps/x", `{"password":"s"}`},
		{"/admin/apps/a:b", `{"secret":"s"}`},
	} {
		resp, body = call("PUT", bad.path, bad.body)
		expect(resp, body, 400)
	}
	resp, body = call("DELETE", "/admin/apps/new-app", "")
	expect(resp, body, 204)
	if got := newApp(); got != 401 {
		t.Fatalf("deleted app token: %d", got)
	}
	resp, body = call("DELETE", "/admin/apps/new-app", "")
	expect(resp, body, 404)

	// None of the admin calls above were counted.
	for route := range srv.Stats().Requests {
		if strings.Contains(route, "/admin") || strings.Contains(route, "/healthz") {
			t.Fatalf("admin route counted: %s", route)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	srv := New(Config{Apps: map[string]string{appKey: appSecret}})
	if f := srv.Faults(); f.Status != 503 || f.Rate != 0 {
		t.Fatalf("default faults %+v", f)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))
	var tb tokenBody
	if err := json.Unmarshal(w.Body.Bytes(), &tb); err != nil {
		t.Fatal(err)
	}
	// Real clock: allow for a second boundary between issue and response.
	if tb.ExpiresIn < int64(DefaultTokenLifetime/time.Second)-1 || tb.ExpiresIn > int64(DefaultTokenLifetime/time.Second) {
		t.Fatalf("default lifetime expires_in %d", tb.ExpiresIn)
	}
}
