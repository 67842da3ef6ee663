package e2e

import (
	"testing"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestStandbyHandover (issue 11 §1) with the shipped binaries: a ThingSpaceApp with a standby key set
// hands over to it and back (9 s tokens: handoverBefore's default 5m is used as a third of that, 3 s),
// one token request per published token, no revoke, and the replaced token still opens an M2M session
// at the simulator when its successor is published.
func TestStandbyHandover(t *testing.T) {
	t.Parallel()
	const key, sbKey = "standby-primary", "standby-standby"
	secret, sbSecret := "standby-p-"+randHex(12), "standby-s-"+randHex(12)
	sim := newSim(t, "9s", key+":"+secret, sbKey+":"+sbSecret)
	const user, password = "standby-user", "standby-Passw0rd!"
	sensitive.AddUWSCredentials(user, password)
	if err := sim.SetM2MUser(user, password); err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)
	createCredentials(t, ns, "standby", sbKey, sbSecret)
	app := harness.NewApp(ns, "app", sim.URL, "creds", "token")
	app.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: "standby"}
	createApp(t, app)
	waitReady(t, ns, "app")
	prev, _ := readToken(t, ns, "token")

	for i, want := range []string{v1alpha1.KeySetStandby, v1alpha1.KeySetPrimary} {
		got := waitApp(t, ns, "app", 20*time.Second, "a handover to the "+want+" key set", func(a *v1alpha1.ThingSpaceApp) bool {
			return a.Status.ActiveKeySet == want
		})
		tok, _ := readToken(t, ns, "token")
		if tok == prev {
			t.Fatalf("handover %d: status says %s, the Secret holds the old token", i+1, got.Status.ActiveKeySet)
		}
		// The replaced token still works upstream: nothing was revoked.
		if _, err := sim.M2MLogin(t.Context(), prev, user, password); err != nil {
			t.Fatalf("handover %d: the replaced token no longer works: %v", i+1, err)
		}
		prev = tok
	}
	if n := calls(t, sim, harness.RouteToken, 200); n != 3 {
		t.Errorf("token requests = %d for 3 published tokens, want 3 (%v)", n, stats(t, sim))
	}
	if n := calls(t, sim, harness.RouteRevoke, 0); n != 0 {
		t.Errorf("revoke requests = %d, want 0", n)
	}
}
