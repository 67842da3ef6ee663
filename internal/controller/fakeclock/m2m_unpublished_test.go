package fakeclock

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 14 (chaos): while the API server was out, a session's login could not be published (its Secret
// write failed), and every workqueue retry logged in again: bursts of 8 logins, each a new session
// upstream. The retry publishes the login it holds instead: one login, however many writes failed.
func TestM2MFailedSecretWritesCostNoSecondLogin(t *testing.T) {
	f := newBareFixture(t, "m2m-unpublished", simulator.Config{TokenLifetime: 24 * time.Hour})
	down := &atomic.Bool{}
	failed := &atomic.Int32{}
	f.ownManager(nil, func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if down.Load() && r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/secrets") {
				failed.Add(1)
				return nil, errors.New("the API server is out")
			}
			return rt.RoundTrip(r)
		})
	})
	m2mWorld(f)
	down.Store(true)
	f.create(newSession("s"))
	// The pass's retries wait out a backoff on the fake clock: step through it.
	f.eventually("three failed Secret writes", 20*time.Second, func() bool {
		f.step(2 * time.Second)
		return failed.Load() >= 3
	})
	down.Store(false)
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(loginRoute); n != 1 {
		t.Fatalf("%d logins for %d failed Secret writes, want 1: a retry logged in again instead of publishing its login", n, failed.Load())
	}
	if got := f.current("s-session").session; got == "" {
		t.Fatal("the Secret holds no session")
	}
}
