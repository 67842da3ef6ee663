package fakeclock

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const (
	uwsUser     = "fleet-uws"
	uwsPassword = "Str0ng!Passw0rd"
	logoutRoute = "POST /api/m2m/v1/session/logout"
)

// m2mWorld adds a Ready app "app", the UWS user and its credentials Secret "uws" to f.
func m2mWorld(f *fixture) {
	f.t.Helper()
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	f.credentials("app-creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	f.app("app", "app-creds")
	f.waitCondition("app", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.credentials("uws", map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword})
}

func newSession(name string, mutate ...func(*v1alpha1.M2MSession)) *v1alpha1.M2MSession {
	s := &v1alpha1.M2MSession{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.M2MSessionSpec{
			AppRef:               v1alpha1.LocalObjectReference{Name: "app"},
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "uws"},
			SecretName:           name + "-session",
			KeepAlive:            v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "0000123456-00001"},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

// Issue 8 scenario 14: deleting an M2MSession whose logout keeps failing transiently held the object
// for as long as the app token stayed valid. A session idle for 20 minutes has ended on the platform
// anyway: past that, the finalizer goes without a logout.
func TestM2MDeletionDoesNotOutwaitTheIdleTimeout(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 2 * time.Hour})
	m2mWorld(f)
	f.create(newSession("s"))
	f.waitCondition("s", &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)

	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: 503})
	s := &v1alpha1.M2MSession{}
	f.get("s", s)
	must(t, k8s.Delete(context.Background(), s))
	f.eventually("a logout attempt", 20*time.Second, func() bool { return f.sim.Stats().Total(logoutRoute) > 0 })
	// Within the idle timeout the logout is retried and the object held.
	for range 5 {
		f.step(3 * time.Minute)
		f.settle(200 * time.Millisecond)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "s"}, &v1alpha1.M2MSession{}); err != nil {
		t.Fatalf("the session went before its idle timeout (%v): a retryable logout was given up early", err)
	}
	tries := f.sim.Stats().Total(logoutRoute)
	if tries < 2 {
		t.Fatalf("%d logout attempts within 15 minutes, want retries", tries)
	}
	// Past 20 minutes since the session was last used, the logout is moot.
	f.step(6 * time.Minute)
	f.eventually("the deleted session gone", 20*time.Second, func() bool {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "s"}, &v1alpha1.M2MSession{})
		if !apierrors.IsNotFound(err) {
			f.step(time.Second) // let a retry that is due fire
			return false
		}
		return true
	})
}
