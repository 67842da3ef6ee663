package fakeclock

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// refuseCredentialsWrites makes every write of the credentials Secret "uws" fail, as in an API-server
// outage, while refused is on (reads still pass).
func refuseCredentialsWrites(refused *atomic.Bool) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if refused.Load() && r.Method != http.MethodGet && strings.HasSuffix(r.URL.Path, "/secrets/uws") {
				return nil, errors.New("test: the API server is unreachable")
			}
			return rt.RoundTrip(r)
		})
	}
}

// Issue 14 (chaos, seed 1, "passwords lost"): a reset the platform applied and answered while the
// credentials Secret could not be written (an API outage) kept its password in memory only, with no
// in-flight registration once the pass returned; a SIGTERM, or the lost lease the outage itself brings,
// then drained at once and the process exited with the account's only copy of its password. The
// password is now kept registered, and retried, until it lands: the drain waits for it.
func TestM2MResetPasswordStoredAcrossShutdownWhileItsWriteFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		// held: the reset's answer is held and SIGTERM comes meanwhile (its write fails during the
		// shutdown); else the write failed in a pass while running, and SIGTERM comes after.
		held bool
	}{{name: "SIGTERM during the reset", held: true}, {name: "SIGTERM after the failed pass"}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newBareFixture(t, "m2m-reset-pending", simulator.Config{TokenLifetime: 24 * time.Hour})
			refused := &atomic.Bool{}
			tracker := &inflight.Tracker{}
			stop := f.ownManager(tracker, refuseCredentialsWrites(refused))
			m2mWorld(f)
			f.create(newSession("s", func(s *v1alpha1.M2MSession) {
				s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}}
				s.Spec.LogoutOnDelete = new(bool)
			}))
			sess := &v1alpha1.M2MSession{}
			f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
			if tc.held {
				f.sim.SetM2MResetDelay(2 * time.Second)
			}
			refused.Store(true)
			for range 6 {
				f.step(10*time.Minute + time.Second)
				time.Sleep(100 * time.Millisecond)
			}
			f.eventually("the platform applied a reset", 20*time.Second, func() bool {
				info, _ := f.sim.M2MUser(uwsUser)
				return info.Password != uwsPassword
			})
			if !tc.held {
				f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored)
			}
			// The API server comes back 6 s after SIGTERM: within the drain's bound, after the pass.
			back := time.AfterFunc(6*time.Second, func() { refused.Store(false) })
			defer back.Stop()
			stop()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if !tracker.Drain(ctx) {
				t.Fatal("the pending password was not stored within the drain's 20 s")
			}
			info, _ := f.sim.M2MUser(uwsUser)
			if got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]); got != info.Password {
				t.Fatalf("after the drain the credentials Secret does not hold the platform's password (it holds the old one: %v): the reset's answer was lost", got == uwsPassword)
			}
			if n := f.sim.Stats().Count(resetRoute, 200); n != 1 {
				t.Errorf("%d resets answered, want 1", n)
			}
		})
	}
}
