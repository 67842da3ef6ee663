package simulator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A reset whose answer is dropped or unreadable is applied all the same: the old password stops
// working and the client never learns the new one.
func TestM2MResetAnswerLost(t *testing.T) {
	for _, answer := range []M2MResetAnswer{M2MResetAnswerDrop, M2MResetAnswerUnreadable} {
		t.Run(string(answer), func(t *testing.T) {
			f, bearer := newM2MFixture(t, nil)
			s := f.mustLogin(bearer, uwsUser, uwsPass)
			f.srv.SetM2MResetAnswer(answer)
			srv := httptest.NewServer(f.srv)
			defer srv.Close()
			r := m2mReq(http.MethodPut, m2mResetPath, bearer, s, resetBody(uwsPass))
			req, err := http.NewRequest(r.Method, srv.URL+m2mResetPath, strings.NewReader(resetBody(uwsPass)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = r.Header
			resp, err := srv.Client().Do(req)
			switch answer {
			case M2MResetAnswerDrop:
				if err == nil {
					resp.Body.Close()
					t.Fatalf("dropped answer: got HTTP %d", resp.StatusCode)
				}
			case M2MResetAnswerUnreadable:
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("unreadable answer: HTTP %d", resp.StatusCode)
				}
				if m := decodeMap(t, b); m["newPassword"] != nil {
					t.Fatal("the unreadable answer carries newPassword")
				}
			}
			info, _ := f.srv.M2MUser(uwsUser)
			if info.Password == uwsPass {
				t.Fatal("the reset was not applied")
			}
			if w := f.login(bearer, uwsUser, uwsPass); w.Code != http.StatusBadRequest {
				t.Fatalf("login with the old password after the reset: %d", w.Code)
			}
			f.srv.SetM2MResetAnswer(M2MResetAnswerNormal)
			if w := f.reset(bearer, f.mustLogin(bearer, uwsUser, info.Password), info.Password); w.Code != http.StatusOK ||
				!strings.Contains(w.Body.String(), "newPassword") {
				t.Fatalf("normal answer again: %d %s", w.Code, w.Body)
			}
		})
	}
}

func TestM2MAdminResetAnswer(t *testing.T) {
	f, _ := newM2MFixture(t, nil)
	for body, want := range map[string]int{`{"answer":"drop"}`: 204, `{"answer":"bogus"}`: 400, `{"answer":`: 400} {
		if w := f.do(httptest.NewRequest(http.MethodPut, "/admin/m2m/reset-answer", strings.NewReader(body))); w.Code != want {
			t.Fatalf("reset-answer %s: %d, want %d", body, w.Code, want)
		}
	}
	if f.srv.m2m.resetAnswer != M2MResetAnswerDrop {
		t.Fatalf("reset answer %q", f.srv.m2m.resetAnswer)
	}
}

// A reset held unanswered until the client gives up is never applied, and counts as 499.
func TestM2MResetHangUnapplied(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	f.srv.SetM2MResetAnswer(M2MResetHangUnapplied)
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+m2mResetPath, strings.NewReader(resetBody(uwsPass)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = m2mReq(http.MethodPut, m2mResetPath, bearer, s, resetBody(uwsPass)).Header
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("held reset answered HTTP %d", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.Stats().Count("PUT "+m2mResetPath, statusClientClosed) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %v", f.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if info, _ := f.srv.M2MUser(uwsUser); info.Password != uwsPass {
		t.Fatal("a reset the client gave up on was applied")
	}
}
