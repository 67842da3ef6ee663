package fakeclock

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// orderLog is one sequence of what the operator did around a password reset, upstream and in the API
// server, in the order it happened.
type orderLog struct {
	mu  sync.Mutex
	seq []string
}

func (l *orderLog) add(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq = append(l.seq, what)
}

func (l *orderLog) events() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seq...)
}

const (
	orderResetAnswered = "reset answered"
	orderCredsWritten  = "credentials Secret written"
	orderStatusRotated = "status recording the reset sent"
)

// logUpstream puts a front before f's simulator that logs every M2M call once it is answered.
func (f *fixture) logUpstream(l *orderLog) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.sim.ServeHTTP(w, r)
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/api/m2m/v1/session/password/actions/reset":
			l.add(orderResetAnswered)
		case strings.HasPrefix(r.URL.Path, "/api/m2m/"):
			l.add("upstream " + r.Method + " " + r.URL.Path)
		}
	}))
	f.t.Cleanup(srv.Close)
	f.url = srv.URL
}

// logAPIWrites logs the writes of the credentials Secret "uws" (once they landed) and the first status
// writes of session "s" that record a reset (when sent).
func logAPIWrites(l *orderLog) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet {
				return rt.RoundTrip(r)
			}
			if strings.HasSuffix(r.URL.Path, "/m2msessions/s/status") && r.Body != nil {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if bytes.Contains(body, []byte("passwordRotatedAt")) {
					l.add(orderStatusRotated)
				}
			}
			resp, err := rt.RoundTrip(r)
			if err == nil && resp.StatusCode < 300 && strings.HasSuffix(r.URL.Path, "/secrets/uws") {
				l.add(orderCredsWritten)
			}
			return resp, err
		})
	}
}

// Issue 14: a reset the platform applied and answered has its new password in the credentials Secret
// before anything else: before the status write that records the reset, before any other M2M call,
// and under SIGTERM (the answer held while the manager stops) before the process is done. The order is
// read from the wire, so a password that lands only later (a pass after the status, or never) fails.
func TestM2MResetPasswordStoredBeforeAnythingElse(t *testing.T) {
	for _, shutdown := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "SIGTERM"}[shutdown], func(t *testing.T) {
			f := newBareFixture(t, "m2m-reset-order", simulator.Config{TokenLifetime: 24 * time.Hour})
			l := &orderLog{}
			f.logUpstream(l)
			tracker := &inflight.Tracker{}
			stop := f.ownManager(tracker, logAPIWrites(l))
			m2mWorld(f)
			f.create(newSession("s", func(s *v1alpha1.M2MSession) {
				s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}}
				s.Spec.LogoutOnDelete = new(bool)
			}))
			sess := &v1alpha1.M2MSession{}
			f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
			if shutdown {
				// The platform applies the reset at once and holds its answer for 3 s.
				f.sim.SetM2MResetDelay(3 * time.Second)
			}
			for range 6 {
				f.step(10*time.Minute + time.Second)
				time.Sleep(100 * time.Millisecond)
			}
			f.eventually("the platform applied a reset", 20*time.Second, func() bool {
				info, _ := f.sim.M2MUser(uwsUser)
				return info.Password != uwsPassword
			})
			if shutdown {
				stop() // SIGTERM while the answer is held
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if !tracker.Drain(ctx) {
					t.Fatal("the in-flight reset did not end within 20 s")
				}
			} else {
				// Both land, whatever the order: the order is checked below.
				f.eventually("the reset on record and its password stored", 20*time.Second, func() bool {
					f.get("s", sess)
					info, _ := f.sim.M2MUser(uwsUser)
					return sess.Status.PasswordRotatedAt != nil && string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]) == info.Password
				})
				f.settle(300 * time.Millisecond)
			}
			info, _ := f.sim.M2MUser(uwsUser)
			if got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]); got != info.Password {
				t.Fatalf("the credentials Secret does not hold the platform's password (old one: %v)", got == uwsPassword)
			}
			seq := l.events()
			at := -1
			for i, e := range seq {
				if e == orderResetAnswered {
					at = i
				}
			}
			if at < 0 || at+1 >= len(seq) || seq[at+1] != orderCredsWritten {
				t.Fatalf("after the reset's answer, first %v; want the credentials Secret written (all: %v)", seq[at+1:], seq)
			}
			for _, e := range seq[:at+1] {
				if e == orderStatusRotated {
					t.Fatalf("a status recording a reset was sent before the reset's answer: %v", seq)
				}
			}
			if n := f.sim.Stats().Count(resetRoute, 200); n != 1 {
				t.Errorf("%d resets answered, want 1", n)
			}
		})
	}
}
