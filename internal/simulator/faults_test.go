package simulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaultRateOne(t *testing.T) {
	tests := []struct {
		name       string
		faults     Faults
		wantStatus int
		wantRetry  string // "" = no header
	}{
		{"default status, no retry", Faults{Rate: 1}, 503, ""},
		{"429 with whole seconds", Faults{Rate: 1, Status: 429, RetryAfter: 2 * time.Second}, 429, "2"},
		{"503 rounds retry up", Faults{Rate: 1, Status: 503, RetryAfter: 1500 * time.Millisecond}, 503, "2"},
		{"sub-second retry is 1", Faults{Rate: 1, Status: 429, RetryAfter: time.Millisecond}, 429, "1"},
		{"bad status clamps to 503", Faults{Rate: 1, Status: 500}, 503, ""},
		{"rate above 1 clamps to 1", Faults{Rate: 7, Status: 429}, 429, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Faults = tt.faults })
			const n = 5
			for range n {
				w := f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))
				if w.Code != tt.wantStatus {
					t.Fatalf("status %d, want %d", w.Code, tt.wantStatus)
				}
				if got := w.Header().Get("Retry-After"); got != tt.wantRetry {
					t.Fatalf("Retry-After %q, want %q", got, tt.wantRetry)
				}
				fault := faultOf(t, w.Body.Bytes())
				if fault["code"] != "900800" {
					t.Fatalf("fault code %v, want 900800", fault["code"])
				}
			}
			if got := f.srv.Stats().Count(tokenRoute, tt.wantStatus); got != n {
				t.Fatalf("stats count %d, want %d", got, n)
			}
			// Faulted requests never reach the handler, so no token exists yet.
			f.srv.SetFaults(Faults{})
			f.clk.Step(time.Minute)
			if got := f.token(appKey, appSecret).ExpiresIn; got != 3600 {
				t.Fatalf("a faulted request minted a token (expires_in %d)", got)
			}
		})
	}
}

func TestFaultScope(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Faults = Faults{Rate: 1, Status: 429} })
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, tsRevokePath, 429},
		{http.MethodGet, "/api/unknown", 429}, // every /api path, routed or not
		{http.MethodGet, "/healthz", 200},
		{http.MethodGet, "/admin/stats", 200},
		{http.MethodGet, "/elsewhere", 404},
	}
	for _, tt := range tests {
		w := f.do(httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.want {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, w.Code, tt.want)
		}
	}
}

func TestFaultRateZero(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Faults = Faults{Rate: 0, Status: 429, RetryAfter: time.Second} })
	for range 200 {
		f.token(appKey, appSecret)
	}
	if got := f.srv.Stats().Count(tokenRoute, 200); got != 200 {
		t.Fatalf("200s = %d, want 200", got)
	}
}

func TestFaultRatePartial(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Faults = Faults{Rate: 0.5} })
	for range 400 {
		f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))
	}
	// P(outside 100..300) for Binomial(400, 0.5) is ~1e-23: a failure means
	// the rate is not honoured, not bad luck.
	st := f.srv.Stats()
	faulted := st.Count(tokenRoute, 503)
	if faulted < 100 || faulted > 300 || faulted+st.Count(tokenRoute, 200) != 400 {
		t.Fatalf("rate 0.5: %d of 400 faulted; stats %v", faulted, st.Requests)
	}
}

func TestSetFaultsTakesEffect(t *testing.T) {
	f := newFixture(t, nil)
	f.token(appKey, appSecret)
	f.srv.SetFaults(Faults{Rate: 1, Status: 429})
	if w := f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials")); w.Code != 429 {
		t.Fatalf("after SetFaults: status %d, want 429", w.Code)
	}
	f.srv.SetFaults(Faults{})
	f.token(appKey, appSecret)
}

func TestLatency(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Faults = Faults{Latency: 2 * time.Second} })
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))
		done <- w
	}()
	waitForWaiter(t, f)

	f.clk.Step(time.Second)
	select {
	case <-done:
		t.Fatal("request finished before the latency elapsed")
	case <-time.After(20 * time.Millisecond):
	}
	f.clk.Step(time.Second)
	select {
	case w := <-done:
		if w.Code != 200 {
			t.Fatalf("status %d after latency", w.Code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request still blocked after the latency elapsed")
	}

	// Admin endpoints are never delayed.
	if w := f.do(httptest.NewRequest(http.MethodGet, "/healthz", nil)); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
}

func TestLatencyCancel(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Faults = Faults{Latency: time.Hour} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials").WithContext(ctx))
		done <- w
	}()
	waitForWaiter(t, f)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled request still waiting out the latency")
	}
	if got := f.srv.Stats().Count(tokenRoute, statusClientClosed); got != 1 {
		t.Fatalf("cancelled request counted %d times as %d; stats %v", got, statusClientClosed, f.srv.Stats().Requests)
	}
}

// waitForWaiter blocks until the server is sleeping on the fake clock.
func waitForWaiter(t *testing.T, f *fixture) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f.clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("request never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFaultsJSON(t *testing.T) {
	in := `{"rate":1,"status":429,"retryAfter":"2s","latency":"150ms"}`
	var f Faults
	if err := json.Unmarshal([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	want := Faults{Rate: 1, Status: 429, RetryAfter: 2 * time.Second, Latency: 150 * time.Millisecond}
	if f != want {
		t.Fatalf("decoded %+v, want %+v", f, want)
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"rate":1,"status":429,"retryAfter":"2s","latency":"150ms"}` {
		t.Fatalf("encoded %s", out)
	}

	bad := []string{
		`{"rate":1,"retryAfter":"2 seconds"}`,
		`{"rate":1,"latency":5}`,
		`{"rate":1,"retry_after":"2s"}`,
		`[]`,
	}
	for _, b := range bad {
		if err := json.Unmarshal([]byte(b), &f); err == nil {
			t.Errorf("%s: want error", b)
		}
	}
}

func TestFaultsValidate(t *testing.T) {
	tests := []struct {
		f    Faults
		want string // substring of the error, "" = valid
	}{
		{Faults{}, ""},
		{Faults{Rate: 1, Status: 429, RetryAfter: time.Second, Latency: time.Second}, ""},
		{Faults{Rate: 0.3, Status: 503}, ""},
		{Faults{Rate: -0.1}, "rate"},
		{Faults{Rate: 1.1}, "rate"},
		{Faults{Status: 500}, "status"},
		{Faults{RetryAfter: -time.Second}, "retryAfter"},
		{Faults{Latency: -time.Second}, "latency"},
	}
	for _, tt := range tests {
		err := tt.f.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.f, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want one about %s", tt.f, err, tt.want)
		}
	}
}
