package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
)

var engineNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestEngine(t *testing.T, baseURL string, hc *http.Client, timeout time.Duration) (*Engine, *upstreamtest.Recorder) {
	t.Helper()
	obs := &upstreamtest.Recorder{}
	e, err := NewEngine(EngineConfig{
		API:        "api",
		BaseURL:    baseURL,
		HTTPClient: hc,
		UserAgent:  "test-agent",
		Observer:   obs.Observe,
		Clock:      testingclock.NewFakePassiveClock(engineNow),
		Timeout:    timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, obs
}

// classifyAll records what it was given and returns a fixed answer.
type classifyAll struct {
	status int
	body   []byte
	called int
}

func (c *classifyAll) classify(status int, body []byte) (string, Kind) {
	c.status, c.body = status, body
	c.called++
	return "a_code", Rejected
}

func TestEngineSuccess(t *testing.T) {
	var seen *http.Request
	var seenBody string
	srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen, seenBody = r, string(b)
		w.Header().Set("X-Answer", "yes")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	e, obs := newTestEngine(t, srv.URL+"/prefix/", srv.Client(), 0)
	cl := &classifyAll{}

	resp, err := e.Do(t.Context(), Request{
		Endpoint:    "ep",
		Method:      http.MethodPost,
		Path:        "/a/b",
		Header:      http.Header{"Authorization": {"Bearer x"}},
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte("k=v"),
		ReadBody:    true,
		Classify:    cl.classify,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != `{"ok":true}` || resp.Header.Get("X-Answer") != "yes" {
		t.Errorf("response %+v", resp)
	}
	if seen.Method != http.MethodPost || seen.URL.Path != "/prefix/a/b" || seenBody != "k=v" {
		t.Errorf("request %s %s %q", seen.Method, seen.URL.Path, seenBody)
	}
	for h, want := range map[string]string{
		"Authorization": "Bearer x",
		"Content-Type":  "application/x-www-form-urlencoded",
		"Accept":        "application/json",
		"User-Agent":    "test-agent",
	} {
		if got := seen.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if cl.called != 0 {
		t.Error("a 2xx was classified")
	}
	obs.Expect(t, "ep 200")

	// Without ReadBody a 2xx is success whatever its body, and the body is not returned.
	resp, err = e.Do(t.Context(), Request{Endpoint: "ep", Method: http.MethodGet, Path: "/x", Classify: cl.classify})
	if err != nil || resp.Body != nil || resp.Status != 200 {
		t.Fatalf("resp %+v, err %v", resp, err)
	}
	if seen.Header.Get("Content-Type") != "" {
		t.Error("Content-Type set without a content type")
	}
	obs.Expect(t, "ep 200", "ep 200")
}

func TestEngineErrorResponse(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		body           string
		retryAfter     string
		wantBody       string
		wantRetryAfter time.Duration
	}{
		{name: "body passed to the classifier", status: 400, body: `{"error":"x"}`, wantBody: `{"error":"x"}`},
		{name: "retry-after seconds", status: 429, retryAfter: "7", wantRetryAfter: 7 * time.Second},
		{name: "retry-after http-date", status: 503, retryAfter: engineNow.Add(2 * time.Minute).Format(http.TimeFormat), wantRetryAfter: 2 * time.Minute},
		{name: "retry-after garbage", status: 503, retryAfter: "later"},
		{name: "oversized body leaves the status alone", status: 401, body: strings.Repeat("x", int(DefaultBodyLimit)+1)},
		{name: "redirect not followed", status: 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var followed atomic.Bool
			srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					followed.Store(true)
					return
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			hc := srv.Client()
			e, obs := newTestEngine(t, srv.URL, hc, 0)
			cl := &classifyAll{}
			_, err := e.Do(t.Context(), Request{Endpoint: "ep", Method: http.MethodPost, Path: "/p", ReadBody: true, Classify: cl.classify})
			ue, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if ue.API != "api" || ue.Endpoint != "ep" || ue.StatusCode != tt.status || ue.Code != "a_code" || ue.Kind != Rejected {
				t.Errorf("error %#v", ue)
			}
			if ue.RetryAfter != tt.wantRetryAfter {
				t.Errorf("RetryAfter = %v, want %v", ue.RetryAfter, tt.wantRetryAfter)
			}
			if ue.Unanswered {
				t.Error("an answered request is marked Unanswered")
			}
			if cl.called != 1 || cl.status != tt.status || string(cl.body) != tt.wantBody {
				t.Errorf("classifier called %d times with (%d, %d bytes)", cl.called, cl.status, len(cl.body))
			}
			if followed.Load() || hc.CheckRedirect != nil {
				t.Error("redirect followed, or the caller's client changed")
			}
			obs.Expect(t, fmt.Sprintf("ep %d", tt.status))
		})
	}
}

func TestEngine2xxBodyProblems(t *testing.T) {
	t.Run("too large is malformed", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("x", int(DefaultBodyLimit)+1))
		}))
		e, obs := newTestEngine(t, srv.URL, srv.Client(), 0)
		_, err := e.Do(t.Context(), Request{Endpoint: "ep", Method: http.MethodGet, Path: "/", ReadBody: true})
		ue, ok := errors.AsType[*Error](err)
		if !ok || ue.Kind != Transient || ue.StatusCode != 200 || !errors.Is(err, ErrBodyTooLarge) || !strings.Contains(err.Error(), "malformed response") {
			t.Fatalf("err = %v", err)
		}
		if ue.Unanswered {
			t.Error("a 2xx that arrived in full is not Unanswered")
		}
		obs.Expect(t, "ep 200")
	})
	t.Run("cut off is an unanswered transport error", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, upstreamtest.Raw(t, "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"a\":"))
		e, obs := newTestEngine(t, srv.URL, srv.Client(), 0)
		_, err := e.Do(t.Context(), Request{Endpoint: "ep", Method: http.MethodPost, Path: "/", Body: []byte("x"), ReadBody: true})
		ue, ok := errors.AsType[*Error](err)
		if !ok || ue.Kind != Transient || ue.StatusCode != 0 || !ue.Unanswered || !unanswered(err) {
			t.Fatalf("err = %#v", err)
		}
		obs.Expect(t, "ep error")
	})
}

func TestEngineUnanswered(t *testing.T) {
	post := Request{Endpoint: "ep", Method: http.MethodPost, Path: "/", Body: []byte("grant_type=refresh_token"), ReadBody: true}

	t.Run("connection closed after the request was read", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, upstreamtest.Raw(t, ""))
		e, obs := newTestEngine(t, srv.URL, srv.Client(), 0)
		_, err := e.Do(t.Context(), post)
		if !unanswered(err) || !IsTransient(err) {
			t.Fatalf("err = %#v, want Unanswered", err)
		}
		if !strings.Contains(fmt.Sprintf("%#v", err), "Unanswered:true") {
			t.Errorf("%%#v does not show Unanswered: %#v", err)
		}
		obs.Expect(t, "ep error")
	})

	t.Run("timeout after the request was written", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, http.HandlerFunc(upstreamtest.Block))
		e, obs := newTestEngine(t, srv.URL, srv.Client(), 50*time.Millisecond)
		_, err := e.Do(t.Context(), post)
		if !unanswered(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %#v, want an Unanswered timeout", err)
		}
		obs.Expect(t, "ep error")
	})

	t.Run("connection refused", func(t *testing.T) {
		e, obs := newTestEngine(t, upstreamtest.RefusedURL(t), nil, 0)
		_, err := e.Do(t.Context(), post)
		if !IsTransient(err) || unanswered(err) {
			t.Fatalf("err = %#v, want transient and not Unanswered", err)
		}
		obs.Expect(t, "ep error")
	})

	t.Run("connection closed while the request is written", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Close without reading the body: the client's write fails part way.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}))
		e, obs := newTestEngine(t, srv.URL, srv.Client(), 0)
		big := post
		big.Body = make([]byte, 64<<20) // far more than socket buffers hold
		_, err := e.Do(t.Context(), big)
		if !IsTransient(err) || unanswered(err) {
			t.Fatalf("err = %#v, want transient and not Unanswered", err)
		}
		obs.Expect(t, "ep error")
	})

	t.Run("canceled before sending", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		e, _ := newTestEngine(t, srv.URL, srv.Client(), 0)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := e.Do(ctx, post); !errors.Is(err, context.Canceled) || unanswered(err) {
			t.Fatalf("err = %#v, want canceled and not Unanswered", err)
		}
	})

	t.Run("TLS handshake refused", func(t *testing.T) {
		srv := newTLSServer(t)
		e, _ := newTestEngine(t, srv.URL, nil, 0) // system roots: the test CA is not trusted
		if _, err := e.Do(t.Context(), post); !IsTransient(err) || unanswered(err) {
			t.Fatalf("err = %#v, want transient and not Unanswered", err)
		}
	})

	t.Run("error response", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
		e, _ := newTestEngine(t, srv.URL, srv.Client(), 0)
		r := post
		r.Classify = func(int, []byte) (string, Kind) { return "", Transient }
		if _, err := e.Do(t.Context(), r); !IsTransient(err) || unanswered(err) {
			t.Fatalf("err = %#v, want transient and not Unanswered", err)
		}
	})
}

func TestNewEngine(t *testing.T) {
	e, err := NewEngine(EngineConfig{API: "api", BaseURL: "https://h.example/base/"})
	if err != nil {
		t.Fatal(err)
	}
	if e.timeout != DefaultTimeout || e.bodyLimit != DefaultBodyLimit || e.clock == nil || e.hc == nil || e.hc.CheckRedirect == nil {
		t.Errorf("defaults not applied: %+v", e)
	}
	if got := e.URL("/oauth2/authorize", "a=b%20c"); got != "https://h.example/base/oauth2/authorize?a=b%20c" {
		t.Errorf("URL = %q", got)
	}
	if got := e.URL("/x", ""); got != "https://h.example/base/x" {
		t.Errorf("URL = %q", got)
	}
	if _, err := NewEngine(EngineConfig{API: "api", BaseURL: "https://u:p@h.example"}); err == nil || !strings.HasPrefix(err.Error(), "api: ") {
		t.Errorf("bad base URL: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	cause := errors.New("json: " + secret)
	err := Malformed("api", "token", 200, "not a token object", cause)
	if err.Error() != "api token: HTTP 200: malformed response: not a token object (transient)" {
		t.Errorf("message %q", err)
	}
	if !errors.Is(err, cause) || err.Unanswered {
		t.Errorf("%#v", err)
	}
}

// unanswered reports whether err is an *Error with Unanswered set, wrapped or not.
func unanswered(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Unanswered
}
