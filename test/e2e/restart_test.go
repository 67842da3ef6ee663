package e2e

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestRestartMakesNoUpstreamCalls: a restarted manager picks the tokens up from the Secrets and the
// status; with every token valid for long, and rejected credentials unchanged, it calls nothing upstream. Serial: it restarts the suite's
// manager.
func TestRestartMakesNoUpstreamCalls(t *testing.T) {
	secretA, secretB := "restart-a-"+randHex(12), "restart-b-"+randHex(12)
	// Hour-long tokens, so the restart does not race an expiry.
	sim := newSim(t, longLifetime, "restart-a:"+secretA, "restart-b:"+secretB)
	ns := newNamespace(t)
	createCredentials(t, ns, "creds-a", "restart-a", secretA)
	createCredentials(t, ns, "creds-b", "restart-b", secretB)
	// Two apps share key restart-a, so the shared token is picked up twice after the restart.
	apps := map[string]string{"a1": "creds-a", "a2": "creds-a", "b1": "creds-b"}
	for name, creds := range apps {
		createApp(t, harness.NewApp(ns, name, sim.URL, creds, name+"-token"))
	}
	// And one whose credentials were rejected: it must stay quiet across the restart too.
	wrong := "wrong-" + randHex(12)
	createCredentials(t, ns, "creds-bad", "restart-b", wrong)
	createApp(t, harness.NewApp(ns, "bad", sim.URL, "creds-bad", "bad-token"))
	before := map[string]string{}
	for name := range apps {
		waitReady(t, ns, name)
		before[name], _ = readToken(t, ns, name+"-token")
	}
	waitCondition(t, ns, "bad", metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected, 30*time.Second)
	if before["a1"] != before["a2"] {
		t.Errorf("apps sharing one app key hold different tokens")
	}
	if n := calls(t, sim, harness.RouteToken, 200); n > 3 {
		t.Errorf("token requests for 3 apps on 2 keys = %d, want at most 3: %v", n, stats(t, sim))
	}

	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not shut down cleanly: %v", err)
	}
	if err := sim.ResetStats(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	// Reconciled: every app's ready gauge is back (the gauges live in the process, so they are new).
	err := harness.WaitFor(t.Context(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		text, err := mgr.Metrics()
		if err != nil {
			return false, nil
		}
		for name := range apps {
			if v, ok := harness.MetricValue(text, "thingspace_app_ready_status", map[string]string{"namespace": ns, "name": name, "condition": "True"}); !ok || v != 1 {
				return false, nil
			}
		}
		_, ok := harness.MetricValue(text, "thingspace_app_ready_status", map[string]string{"namespace": ns, "name": "bad", "condition": "True"})
		return ok, nil
	})
	if err != nil {
		t.Fatalf("the restarted manager did not report the apps ready: %v", err)
	}
	t.Logf("apps reconciled %v after the restart began", time.Since(restarted).Round(10*time.Millisecond))
	time.Sleep(time.Second) // room for a stray call to show up

	if n, r := calls(t, sim, harness.RouteToken, 0), calls(t, sim, harness.RouteRevoke, 0); n != 0 || r != 0 {
		t.Errorf("after the restart: %d token and %d revoke requests, want none: %v", n, r, stats(t, sim))
	}
	for name := range apps {
		app := getApp(t, ns, name)
		if ready, reason := harness.Ready(app); !ready {
			t.Errorf("%s: not Ready after the restart (%s): %s", name, reason, describe(app))
		}
		if tok, _ := readToken(t, ns, name+"-token"); tok != before[name] {
			t.Errorf("%s: the token changed across the restart", name)
		}
	}
	if ready, reason := harness.Ready(getApp(t, ns, "bad")); ready || reason != v1alpha1.ReasonCredentialsRejected {
		t.Errorf("bad: Ready=%v reason %s after the restart, want False %s", ready, reason, v1alpha1.ReasonCredentialsRejected)
	}
}
