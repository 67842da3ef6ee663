package fakeclock

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 14, chaos seed 55 at 37e248f ("grants lost without a refusal from the upstream"): a refresh
// answered 200 while the API server restarted; the write of the rotated refresh token failed, the pass
// returned with it in memory (its in-flight registration ended), and a SIGTERM 9 ms later exited with
// the only copy. The write is now tried again, the registration held, until it lands: the drain waits,
// and the grant Secret holds the live, rotated refresh token.
func TestCloudRefreshAnswerStoredAcrossShutdownWhileItsWriteFails(t *testing.T) {
	f := newBareFixture(t, "cloud-persist", simulator.Config{CloudAccessTokenLifetime: time.Hour})
	refused := &atomic.Bool{}
	tracker := &inflight.Tracker{}
	grant := "photos" + v1alpha1.GrantSecretSuffix
	stop := f.ownManager(tracker, func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if refused.Load() && r.Method != http.MethodGet && strings.HasSuffix(r.URL.Path, "/secrets/"+grant) {
				return nil, errors.New("test: the API server is restarting")
			}
			return rt.RoundTrip(r)
		})
	})
	f.adoptGrant()
	old := string(f.secretData(grant)[v1alpha1.SecretKeyRefreshToken])

	// The refresh's answer waits for the clock; the marker is written before it is sent.
	f.sim.SetFaults(simulator.Faults{Latency: time.Second})
	f.requestCloudRefresh("photos", "1")
	f.eventually("the refresh marker", 10*time.Second, func() bool {
		s := &corev1.Secret{}
		f.get(grant, s)
		return s.Annotations[v1alpha1.RefreshStartedAnnotation] != ""
	})
	refused.Store(true)
	f.step(time.Second) // Verizon rotates the refresh token and answers; its write fails
	f.eventually("the rotation", 10*time.Second, func() bool { return !f.sim.Live([]string{old})[0] })
	back := time.AfterFunc(3*time.Second, func() { refused.Store(false) })
	defer back.Stop()
	stop() // SIGTERM while the write fails
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !tracker.Drain(ctx) {
		t.Fatal("the refresh's answer was not stored within the drain's 20 s")
	}
	s := &corev1.Secret{}
	f.get(grant, s)
	if got := string(s.Data[v1alpha1.SecretKeyRefreshToken]); got == old || !f.sim.Live([]string{got})[0] {
		t.Fatalf("after the drain the grant Secret holds %s refresh token: the rotated one was lost", map[bool]string{true: "the spent", false: "a dead"}[got == old])
	}
	if s.Annotations[v1alpha1.RefreshStartedAnnotation] != "" {
		t.Fatal("the refresh marker is still set after the answer was stored")
	}
}
