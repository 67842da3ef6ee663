package cloudapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
)

// The checks themselves are upstream.ParseBaseURL's; New must apply them and name the API.
func TestNewValidatesBaseURL(t *testing.T) {
	for _, base := range []string{DefaultBaseURL, DefaultBaseURL + "/", "http://127.0.0.1:8080/proxy/cloud/1"} {
		if c, err := New(base, nil); err != nil || c == nil {
			t.Errorf("New(%q) = %v, %v", base, c, err)
		}
	}
	for _, base := range []string{"", "api.cloudapi.verizon.com/cloud/1", "https://user:pa55word@api.cloudapi.verizon.com/cloud/1", DefaultBaseURL + "?x=1"} {
		c, err := New(base, nil)
		if err == nil || c != nil || !strings.HasPrefix(err.Error(), API+": ") || strings.Contains(err.Error(), "pa55word") {
			t.Errorf("New(%q) = %v, %v; want an error naming the API and quoting nothing", base, c, err)
		}
	}
}

// Every endpoint path is relative to the base, which carries /cloud/1 (and any proxy prefix).
func TestEndpointPaths(t *testing.T) {
	var paths []string
	srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		upstreamtest.Respond(200, `{"access_token":"a","refresh_token":"r","expires_in":60}`)(w, r)
	}))
	for _, base := range []string{srv.URL + "/proxy/cloud/1", srv.URL + "/proxy/cloud/1/"} {
		paths = nil
		c, err := New(base, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exchange(t.Context(), testCreds, testCode, testRedirect); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Refresh(t.Context(), testCreds, testRefreshToken); err != nil {
			t.Fatal(err)
		}
		if err := c.Account(t.Context(), testAccessToken); err != nil {
			t.Fatal(err)
		}
		want := []string{"POST /proxy/cloud/1/oauth2/token", "POST /proxy/cloud/1/oauth2/token", "GET /proxy/cloud/1/account"}
		if strings.Join(paths, ",") != strings.Join(want, ",") {
			t.Errorf("base %q: server saw %q, want %q", base, paths, want)
		}
		if got := c.AuthorizeURL("k", "r", "s", ""); !strings.HasPrefix(got, srv.URL+"/proxy/cloud/1/oauth2/authorize?") {
			t.Errorf("AuthorizeURL = %q", got)
		}
	}
}

// The client must not follow redirects, and must not change the caller's http.Client to get there.
func TestNoRedirects(t *testing.T) {
	var followed bool
	srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			upstreamtest.Respond(200, `{"access_token":"a","refresh_token":"r","expires_in":60}`)(w, r)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	hc := srv.Client()
	c, err := New(srv.URL+"/cloud/1", hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(t.Context(), testCreds, testRefreshToken)
	if followed {
		t.Fatal("redirect followed: credentials resent to another URL")
	}
	if upstream.KindOf(err) != upstream.Unknown || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("err = %v, want an Unknown HTTP 307 error", err)
	}
	if hc.CheckRedirect != nil {
		t.Error("New modified the caller's http.Client")
	}
}

func TestRequestTimeout(t *testing.T) {
	srv := upstreamtest.NewServer(t, http.HandlerFunc(upstreamtest.Block))
	tests := []struct {
		name string
		opts []Option
		ctx  func(context.Context) (context.Context, context.CancelFunc)
	}{
		{name: "WithRequestTimeout", opts: []Option{WithRequestTimeout(50 * time.Millisecond)}},
		{name: "non-positive values are ignored", opts: []Option{WithRequestTimeout(50 * time.Millisecond), WithRequestTimeout(0), WithRequestTimeout(-time.Second)}},
		{name: "earlier caller deadline wins", opts: []Option{WithRequestTimeout(time.Minute)},
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newTestClient(t, srv, tt.opts...)
			ctx, cancel := t.Context(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(ctx)
			}
			defer cancel()
			start := time.Now()
			err := c.Account(ctx, testAccessToken)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Fatalf("took %v: the bound did not apply", elapsed)
			}
			if !upstream.IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("err = %v, want a transient timeout", err)
			}
			rec.Expect(t, "account error")
		})
	}
}

// WithClock(nil) is ignored: the fake clock set before it still turns the HTTP-date into 2m.
func TestWithClockNilIgnored(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Respond(503, "", "Retry-After", testNow.Add(2*time.Minute).Format(http.TimeFormat)))
	c, _ := newTestClient(t, srv, WithClock(nil))
	_, err := c.Refresh(t.Context(), testCreds, testRefreshToken)
	if d, ok := upstream.RetryAfterOf(err); !ok || d != 2*time.Minute {
		t.Fatalf("RetryAfterOf = %v, %v (err %v)", d, ok, err)
	}
}
