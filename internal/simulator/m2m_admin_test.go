package simulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestM2MRejectBearers(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	f.srv.SetM2MRejectBearers(true)
	for name, w := range map[string]*httptest.ResponseRecorder{
		"login":   f.login(bearer, uwsUser, uwsPass),
		"account": f.account(bearer, s),
		"reset":   f.reset(bearer, s, uwsPass),
	} {
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "900901") {
			t.Fatalf("%s with rejected bearers: %d %s", name, w.Code, w.Body)
		}
	}
	if u := f.user(uwsUser); u.ConsecutiveFailures != 0 || u.Password != uwsPass {
		t.Fatalf("a gateway refusal reached the user: %+v", u)
	}
	f.srv.SetM2MRejectBearers(false)
	if w := f.account(bearer, s); w.Code != http.StatusOK {
		t.Fatalf("after switching off: %d %s", w.Code, w.Body)
	}
}

func TestM2MResetDelayAppliesFirst(t *testing.T) {
	// A real clock here: the hold is a wall-clock wait in the handler.
	srv := New(Config{Apps: map[string]string{appKey: appSecret}, M2MUsers: map[string]string{uwsUser: uwsPass}})
	f := &fixture{t: t, srv: srv}
	bearer := f.token(appKey, appSecret).AccessToken
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	srv.SetM2MResetDelay(time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	r := m2mReq(http.MethodPut, m2mResetPath, bearer, s, resetBody(uwsPass)).WithContext(ctx)
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		done <- w
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.user(uwsUser).Password == uwsPass {
		if time.Now().After(deadline) {
			t.Fatal("the reset was not applied before its answer was held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case w := <-done:
		t.Fatalf("answered during the hold: %d", w.Code)
	case <-time.After(50 * time.Millisecond):
	}
	cancel() // the client gives up: the new password is lost to it
	if w := <-done; w.Body.Len() != 0 {
		t.Fatalf("a client that gave up got a body: %s", w.Body)
	}

	srv.SetM2MResetDelay(0)
	pw := f.user(uwsUser).Password
	if w := f.reset(bearer, s, pw); w.Code != http.StatusOK || f.user(uwsUser).Password == pw {
		t.Fatalf("without a delay: %d %s", w.Code, w.Body)
	}
}

func TestM2MSwitchesOverAdmin(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	for body, want := range map[string]int{`{"delay":"2s"}`: 204, `{"delay":"-1s"}`: 400, `{"delay":"x"}`: 400, `{"hold":"1s"}`: 400} {
		if w := f.do(httptest.NewRequest(http.MethodPut, "/admin/m2m/reset-delay", strings.NewReader(body))); w.Code != want {
			t.Fatalf("reset-delay %s: %d, want %d", body, w.Code, want)
		}
	}
	if f.srv.m2m.resetDelay != 2*time.Second {
		t.Fatalf("reset delay %v", f.srv.m2m.resetDelay)
	}
	if w := f.do(httptest.NewRequest(http.MethodPut, "/admin/m2m/reject-bearers", strings.NewReader(`{"reject":true}`))); w.Code != 204 {
		t.Fatalf("reject-bearers: %d", w.Code)
	}
	if w := f.login(bearer, uwsUser, uwsPass); w.Code != http.StatusUnauthorized {
		t.Fatalf("login after reject-bearers: %d", w.Code)
	}
}
