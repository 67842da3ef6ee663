package credentials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// memSource is a Source the test writes directly.
type memSource struct{ h *holder }

func newMemSource(clk *clocktesting.FakeClock) *memSource { return &memSource{h: newHolder(clk)} }

func (m *memSource) Current(context.Context) (Credential, error) { return m.h.current() }
func (m *memSource) WaitNewer(ctx context.Context, v string) (Credential, error) {
	return m.h.waitNewer(ctx, v)
}
func (m *memSource) Close() error { m.h.close(); return nil }

func (m *memSource) put(t *testing.T, data map[string]string) {
	t.Helper()
	b := map[string][]byte{}
	for k, v := range data {
		b[k] = []byte(v)
	}
	c, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	m.h.set(c)
}

const (
	fault900901 = `{"fault":{"code":"900901","message":"Invalid Credentials","description":"Invalid Credentials. Make sure you have given the correct access token"}}`
	sessionExp  = `{"errorCode":"UnifiedWebService.REQUEST_FAILED.SessionToken.Expired","errorMessage":"Session token expired."}`
)

// upstream accepts only the Bearer (and session) it is told to, and records what it got.
type upstream struct {
	mu      sync.Mutex
	bearer  string
	session string
	hits    []hit
	// reject, when set, answers every request with this status and body.
	rejectStatus int
	rejectBody   string
	// onHit runs at each request before it is answered.
	onHit func()
}

type hit struct{ auth, session, body string }

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if u.onHit != nil {
		u.onHit()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hits = append(u.hits, hit{r.Header.Get("Authorization"), r.Header.Get(SessionHeader), string(b)})
	switch {
	case u.rejectStatus != 0:
		w.WriteHeader(u.rejectStatus)
		_, _ = io.WriteString(w, u.rejectBody)
	case r.Header.Get("Authorization") != "Bearer "+u.bearer:
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, fault900901)
	case u.session != "" && r.Header.Get(SessionHeader) != u.session:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, sessionExp)
	default:
		_, _ = io.WriteString(w, `{"ok":true}`)
	}
}

func (u *upstream) set(bearer, session string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.bearer, u.session = bearer, session
}

func (u *upstream) hitList() []hit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]hit(nil), u.hits...)
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) observe(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) kinds() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []string
	for _, e := range r.events {
		s := string(e.Kind)
		if e.Kind == EventWait && e.Newer {
			s += "+newer"
		}
		k = append(k, s)
	}
	return strings.Join(k, ",")
}

// whenWaiting runs f once the transport is waiting on the fake clock.
func whenWaiting(fc *clocktesting.FakeClock, f func()) {
	go func() {
		for !fc.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		f()
	}()
}

// nonReplayable is a body without GetBody (as a reverse proxy forwards one).
type nonReplayable struct{ io.Reader }

func (nonReplayable) Close() error { return nil }

func TestTransport(t *testing.T) {
	type env struct {
		t   *testing.T
		fc  *clocktesting.FakeClock
		src *memSource
		up  *upstream
	}
	exp := func(e env) time.Time { return e.fc.Now().Add(time.Hour) }
	cases := []struct {
		name string
		// setup prepares the source and the upstream; during runs once the transport waits.
		setup, during func(e env)
		body          func() io.Reader // nil: GET
		wantStatus    int
		wantHits      []hit
		wantEvents    string
		wantBody      string // the caller's view of the final response body
	}{
		{
			name:       "app token: Authorization only",
			setup:      func(e env) { e.src.put(e.t, appSecret("t1", exp(e))); e.up.set("t1", "") },
			wantStatus: 200, wantHits: []hit{{"Bearer t1", "", ""}}, wantEvents: "request",
		},
		{
			name:       "M2M session: both headers",
			setup:      func(e env) { e.src.put(e.t, sessionSecret("t1", "s1", exp(e))); e.up.set("t1", "s1") },
			wantStatus: 200, wantHits: []hit{{"Bearer t1", "s1", ""}}, wantEvents: "request",
		},
		{
			name:       "900901, a newer token arrives during the wait: one retry",
			setup:      func(e env) { e.src.put(e.t, appSecret("t1", exp(e))); e.up.set("t2", "") },
			during:     func(e env) { e.src.put(e.t, appSecret("t2", exp(e))) },
			body:       func() io.Reader { return nonReplayable{strings.NewReader(`{"a":1}`)} },
			wantStatus: 200,
			wantHits:   []hit{{"Bearer t1", "", `{"a":1}`}, {"Bearer t2", "", `{"a":1}`}},
			wantEvents: "request,rejected,wait+newer,retry",
		},
		{
			name:       ".SessionToken., a new session arrives during the wait: one retry",
			setup:      func(e env) { e.src.put(e.t, sessionSecret("t1", "s1", exp(e))); e.up.set("t1", "s2") },
			during:     func(e env) { e.src.put(e.t, sessionSecret("t1", "s2", exp(e))) },
			body:       func() io.Reader { return strings.NewReader("payload") }, // GetBody from http.NewRequest
			wantStatus: 200,
			wantHits:   []hit{{"Bearer t1", "s1", "payload"}, {"Bearer t1", "s2", "payload"}},
			wantEvents: "request,rejected,wait+newer,retry",
		},
		{
			name:       "900901, nothing newer within MaxWait: the rejection, body intact",
			setup:      func(e env) { e.src.put(e.t, appSecret("t1", exp(e))); e.up.set("t2", "") },
			during:     func(e env) { e.fc.Step(2 * time.Second) },
			wantStatus: 401, wantHits: []hit{{"Bearer t1", "", ""}}, wantEvents: "request,rejected,wait",
			wantBody: fault900901,
		},
		{
			name: "already newer on re-read: retry without waiting",
			setup: func(e env) {
				e.src.put(e.t, appSecret("t1", exp(e)))
				e.up.set("t2", "")
				e.up.onHit = func() { e.src.put(e.t, appSecret("t2", exp(e))) } // another reader saw it first
			},
			wantStatus: 200,
			wantHits:   []hit{{"Bearer t1", "", ""}, {"Bearer t2", "", ""}},
			wantEvents: "request,rejected,retry",
		},
		{
			name: "retried once only",
			setup: func(e env) {
				e.src.put(e.t, appSecret("t1", exp(e)))
				e.up.rejectStatus, e.up.rejectBody = 401, fault900901
			},
			during:     func(e env) { e.src.put(e.t, appSecret("t2", exp(e))) },
			wantStatus: 401, wantHits: []hit{{"Bearer t1", "", ""}, {"Bearer t2", "", ""}},
			wantEvents: "request,rejected,wait+newer,retry", wantBody: fault900901,
		},
		{
			name:       "body over the replay bound: streamed, never retried",
			setup:      func(e env) { e.src.put(e.t, appSecret("t1", exp(e))); e.up.set("t2", "") },
			body:       func() io.Reader { return nonReplayable{strings.NewReader(strings.Repeat("x", 100))} },
			wantStatus: 401, wantHits: []hit{{"Bearer t1", "", strings.Repeat("x", 100)}},
			wantEvents: "request,rejected", wantBody: fault900901,
		},
		{
			name: "other errors are the caller's",
			setup: func(e env) {
				e.src.put(e.t, appSecret("t1", exp(e)))
				e.up.rejectStatus, e.up.rejectBody = 401, `{"fault":{"code":"900902","message":"Missing Credentials"}}`
			},
			wantStatus: 401, wantHits: []hit{{"Bearer t1", "", ""}}, wantEvents: "request",
			wantBody: `{"fault":{"code":"900902","message":"Missing Credentials"}}`,
		},
		{
			name: "a 900901 fault code that is not a 401 is not a rejection",
			setup: func(e env) {
				e.src.put(e.t, appSecret("t1", exp(e)))
				e.up.rejectStatus, e.up.rejectBody = 500, fault900901
			},
			wantStatus: 500, wantHits: []hit{{"Bearer t1", "", ""}}, wantEvents: "request", wantBody: fault900901,
		},
		{
			name: "a long error body is passed on whole",
			setup: func(e env) {
				e.src.put(e.t, appSecret("t1", exp(e)))
				e.up.rejectStatus, e.up.rejectBody = 401, strings.Repeat("y", maxErrorBody+10)
			},
			wantStatus: 401, wantHits: []hit{{"Bearer t1", "", ""}}, wantEvents: "request",
			wantBody: strings.Repeat("y", maxErrorBody+10),
		},
		{
			name:       "expired: waits for the operator's next token",
			setup:      func(e env) { e.src.put(e.t, appSecret("t1", e.fc.Now())); e.up.set("t2", "") },
			during:     func(e env) { e.src.put(e.t, appSecret("t2", exp(e))) },
			wantStatus: 200, wantHits: []hit{{"Bearer t2", "", ""}}, wantEvents: "wait+newer,request",
		},
		{
			name:       "expired and nothing within MaxWait: not sent",
			setup:      func(e env) { e.src.put(e.t, appSecret("t1", e.fc.Now())); e.up.set("t1", "") },
			during:     func(e env) { e.fc.Step(2 * time.Second) },
			wantStatus: 0, wantEvents: "wait,no_credential",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC))
			e := env{t: t, fc: fc, src: newMemSource(fc), up: &upstream{}}
			tc.setup(e)
			srv := httptest.NewServer(e.up)
			defer srv.Close()
			rec := &recorder{}
			tr := &Transport{Source: e.src, Base: srv.Client().Transport, MaxWait: 2 * time.Second, MaxReplayBody: 64, Observe: rec.observe, Clock: fc}
			if tc.during != nil {
				whenWaiting(fc, func() { tc.during(e) })
			}
			method, body := http.MethodGet, io.Reader(nil)
			if tc.body != nil {
				method, body = http.MethodPost, tc.body()
			}
			req, err := http.NewRequest(method, srv.URL+"/api/m2m/v1/devices", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Caller", "kept")
			resp, err := tr.RoundTrip(req)
			if tc.wantStatus == 0 {
				if !errors.Is(err, ErrExpired) {
					t.Fatalf("want ErrExpired, got %v", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
				}
				if tc.wantBody != "" && string(got) != tc.wantBody {
					t.Fatalf("body %.80q…, want %.80q…", got, tc.wantBody)
				}
			}
			if hits := e.up.hitList(); fmt.Sprint(hits) != fmt.Sprint(tc.wantHits) {
				t.Fatalf("upstream got %v, want %v", hits, tc.wantHits)
			}
			if got := rec.kinds(); got != tc.wantEvents {
				t.Fatalf("events %s, want %s", got, tc.wantEvents)
			}
			if req.Header.Get("Authorization") != "" || req.Header.Get("X-Caller") != "kept" {
				t.Fatal("the caller's request was modified")
			}
		})
	}
}

// TestTransportLeaksNoToken: events and errors never carry a token.
func TestTransportLeaksNoToken(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	src := newMemSource(fc)
	src.put(t, sessionSecret("bearer-SECRET", "session-SECRET", fc.Now()))
	rec := &recorder{}
	tr := &Transport{Source: src, MaxWait: -1, Observe: rec.observe, Clock: fc}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	_, err := tr.RoundTrip(req)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error %v", err)
	}
	up := &upstream{rejectStatus: 401, rejectBody: fault900901}
	srv := httptest.NewServer(up)
	defer srv.Close()
	src.put(t, sessionSecret("bearer-SECRET", "session-SECRET", fc.Now().Add(time.Hour)))
	tr.Base = srv.Client().Transport
	req, _ = http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte("x")))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	for _, e := range rec.events {
		if s := fmt.Sprintf("%+v", e); strings.Contains(s, "SECRET") {
			t.Fatalf("event leaks: %s", s)
		}
	}
	if rec.kinds() != "no_credential,request,rejected" {
		t.Fatalf("events %s", rec.kinds())
	}
}

// TestTransportRedirect: a redirect to another host does not carry the credential; one to the same host
// does.
func TestTransportRedirect(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	src := newMemSource(fc)
	src.put(t, sessionSecret("t1", "s1", fc.Now().Add(time.Hour)))
	seen := make(chan string, 4)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- "elsewhere:" + r.Header.Get("Authorization") + "|" + r.Header.Get(SessionHeader)
	}))
	defer elsewhere.Close()
	var home *httptest.Server
	home = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- "home:" + r.Header.Get("Authorization") + "|" + r.Header.Get(SessionHeader)
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, home.URL+"/away", http.StatusFound)
		case "/away":
			http.Redirect(w, r, elsewhere.URL+"/x", http.StatusFound)
		}
	}))
	defer home.Close()
	// Both servers are 127.0.0.1 on different ports: Host includes the port.
	client := &http.Client{Transport: &Transport{Source: src, Clock: fc}}
	resp, err := client.Get(home.URL + "/same")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	close(seen)
	var got []string
	for s := range seen {
		got = append(got, s)
	}
	want := "home:Bearer t1|s1 home:Bearer t1|s1 elsewhere:|"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	client.CloseIdleConnections()
}
