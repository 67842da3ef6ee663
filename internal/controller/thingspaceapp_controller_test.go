package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

var ctx = context.Background()

func TestIssuesTokenIntoManagedSecret(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds", func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.SecretTemplate = &v1alpha1.SecretTemplate{Labels: map[string]string{"team": "fleet"}, Annotations: map[string]string{"note": "x"}}
	})
	a := f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)

	s := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "app-token"}, s))
	if s.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue || s.Labels["team"] != "fleet" || s.Annotations["note"] != "x" {
		t.Fatalf("labels/annotations: %v %v", s.Labels, s.Annotations)
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != a.UID || ref.Kind != "ThingSpaceApp" {
		t.Fatalf("controller reference: %+v", ref)
	}
	if string(s.Data[KeyTokenType]) != "Bearer" || len(s.Data[KeyAccessToken]) == 0 {
		t.Fatalf("data keys: %v", keys(s.Data))
	}
	exp, err := time.Parse(time.RFC3339, string(s.Data[KeyExpiresAt]))
	if err != nil || !strings.HasSuffix(string(s.Data[KeyExpiresAt]), "Z") || !exp.After(time.Now()) {
		t.Fatalf("expires_at %q: %v", s.Data[KeyExpiresAt], err)
	}
	if a.Status.ExpiresAt == nil || !a.Status.ExpiresAt.Time.Equal(exp.Truncate(time.Second)) || a.Status.RenewalTime == nil || a.Status.LastRefreshTime == nil {
		t.Fatalf("status: %+v", a.Status)
	}
	if c := a.Status.Conditions[0]; c.ObservedGeneration != a.Generation {
		t.Fatalf("observedGeneration %d, generation %d", c.ObservedGeneration, a.Generation)
	}
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("token calls = %d, want 1", n)
	}
}

func TestRotatesAtExpiryWithOneCallPerLifetimeAndStatusWrittenOnlyOnChange(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds")
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	first, exp, _ := f.token("app-token")
	rv := f.get("app").ResourceVersion

	// Nothing changes before expiry: no status write, no upstream call.
	time.Sleep(time.Until(exp) - 1500*time.Millisecond)
	if got := f.get("app").ResourceVersion; got != rv {
		t.Fatalf("status written while nothing changed: rv %s → %s", rv, got)
	}
	deadline := exp.Add(2 * time.Second)
	for {
		tok, _, _ := f.token("app-token")
		if tok != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new token within 2s of expiry %v", exp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Over three more lifetimes: one call each (give or take one at the edges of the window). A second
	// call per lifetime would mean the refresh fires before the platform lets the token go.
	start := f.tokenCalls()
	time.Sleep(3 * lifetime)
	if n := f.tokenCalls() - start; n < 2 || n > 4 {
		t.Fatalf("token calls over 3 lifetimes = %d, want 2..4 (one per lifetime)", n)
	}
}

func TestAppsSharingAKeyShareOneToken(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	rb := &metav1.Duration{Duration: time.Second}
	f.app("one", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RenewBefore = rb })
	f.app("two", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RenewBefore = rb })
	f.waitReady("one", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	f.waitReady("two", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("token calls for two apps of one key = %d, want 1", n)
	}
	// Through two rotations the apps must not revoke under each other: one revoke per lifetime, and
	// both Secrets converge on the token the platform currently hands out.
	time.Sleep(2*lifetime + time.Second)
	if r := f.revokeCalls(); r < 2 || r > 4 { // a rotation every lifetime-renewBefore = 3s; fighting apps would double it
		t.Fatalf("revokes over 9s = %d, want 2..4", r)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		t1, _, _ := f.token("one-token")
		t2, _, _ := f.token("two-token")
		if t1 == t2 && f.sim.ValidBearer(t1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("apps of one key hold different or dead tokens")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRejectedCredentialsStopUntilTheSecretChanges(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, "wrong-"+f.secret)
	f.app("app", "creds")
	a := f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected, 10*time.Second)
	if a.Status.RejectedCredentialsVersion == "" || a.Status.FailedRefreshAttempts != 1 {
		t.Fatalf("status: %+v", a.Status)
	}
	time.Sleep(2 * time.Second)
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("token calls after a rejection = %d, want 1", n)
	}
	// A spec-irrelevant touch of the app (an annotation) must not retry either.
	patch := client.MergeFrom(a.DeepCopy())
	a.Annotations = map[string]string{"touched": "yes"}
	must(t, k8s.Patch(ctx, a, patch))
	time.Sleep(time.Second)
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("token calls after an unrelated change = %d, want 1", n)
	}
	s := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "creds"}, s))
	s.Data["secret"] = []byte(f.secret)
	must(t, k8s.Update(ctx, s))
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestMissingCredentialsAreWatched(t *testing.T) {
	f := newFixture(t)
	f.app("app", "later")
	a := f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, 10*time.Second)
	if msg := a.Status.Conditions[0].Message; !strings.Contains(msg, "later") {
		t.Fatalf("message should name the Secret: %q", msg)
	}
	// A Secret lacking a key is reported by key name.
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "later"}, Data: map[string][]byte{"key": []byte(f.key)}}))
	time.Sleep(500 * time.Millisecond)
	a = f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, 5*time.Second)
	if msg := a.Status.Conditions[0].Message; !strings.Contains(msg, "secret") {
		t.Fatalf("message should name the missing key: %q", msg)
	}
	s := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "later"}, s))
	s.Data["secret"] = []byte(f.secret)
	must(t, k8s.Update(ctx, s))
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 5*time.Second)
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("token calls = %d, want 1 (none before the credentials existed)", n)
	}
}

func TestTransientFailuresBackOffAndKeepTheValidToken(t *testing.T) {
	f := newFixture(t)
	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: 503, RetryAfter: time.Second})
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds")
	a := f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, 10*time.Second)
	if a.Status.RenewalTime == nil || a.Status.LastFailureTime == nil {
		t.Fatalf("status: %+v", a.Status)
	}
	time.Sleep(3 * time.Second)
	// Retry-After is 1s and the backoff grows from 0.3s: a handful of calls in 3s, not a storm.
	if n := f.tokenCalls(); n < 2 || n > 6 {
		t.Fatalf("token calls in 3s of 503s = %d, want 2..6", n)
	}
	if a = f.get("app"); a.Status.FailedRefreshAttempts < 2 {
		t.Fatalf("failedRefreshAttempts = %d", a.Status.FailedRefreshAttempts)
	}
	f.sim.SetFaults(simulator.Faults{})
	a = f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if a.Status.FailedRefreshAttempts != 0 {
		t.Fatalf("failures not reset: %d", a.Status.FailedRefreshAttempts)
	}

	// With a valid token, failures near expiry keep Ready=True (reason RefreshFailing) while the token
	// lasts, and the token stays in the Secret.
	tok, exp, _ := f.token("app-token")
	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: 429})
	time.Sleep(time.Until(exp) + 300*time.Millisecond)
	if got, _, _ := f.token("app-token"); got != tok {
		t.Fatal("the Secret lost its token during an outage")
	}
	f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, 3*time.Second)
	f.sim.SetFaults(simulator.Faults{})
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestManualRefreshRevokesAndReissuesOnce(t *testing.T) {
	f := newFixtureWith(t, time.Hour) // no expiry-driven call muddles the counts
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds")
	a := f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	before, _, _ := f.token("app-token")
	patch := client.MergeFrom(a.DeepCopy())
	a.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "2026-11-21T10:00:00Z"}
	must(t, k8s.Patch(ctx, a, patch))
	// The Secret is written before the status that records the request: wait for both (a loaded
	// machine widens the gap between them; -shuffle once caught the status a moment behind).
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, _, _ := f.token("app-token")
		observed := f.get("app").Status.ObservedRefreshRequest
		if tok != before && tok != "" && f.sim.ValidBearer(tok) && observed == "2026-11-21T10:00:00Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("manual refresh: new token %v, observedRefreshRequest %q", tok != before && tok != "", observed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// One request, one revoke: our own Secret write triggers another reconcile that may read a
	// cached app from before the status write; it must not act on the request again.
	time.Sleep(500 * time.Millisecond)
	if r, tc := f.revokeCalls(), f.tokenCalls(); r != 1 || tc != 2 {
		t.Fatalf("revokes = %d, token calls = %d; want 1 and 2", r, tc)
	}
	// The same value again does nothing.
	a = f.get("app")
	patch = client.MergeFrom(a.DeepCopy())
	a.Annotations["other"] = "touch"
	must(t, k8s.Patch(ctx, a, patch))
	time.Sleep(500 * time.Millisecond)
	if r := f.revokeCalls(); r != 1 {
		t.Fatalf("revokes after re-applying the same value = %d, want 1", r)
	}
}

func TestForeignSecretIsNeverOverwritten(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "app-token"}, Data: map[string][]byte{"mine": []byte("keep")}}))
	f.app("app", "creds")
	f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, 10*time.Second)
	s := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "app-token"}, s))
	if string(s.Data["mine"]) != "keep" || len(s.Data) != 1 {
		t.Fatalf("foreign Secret touched: %v", keys(s.Data))
	}
	if n := f.tokenCalls(); n != 0 {
		t.Fatalf("token calls with nowhere to write = %d, want 0", n)
	}
	// The foreign Secret going away frees the name (watched through the metadata cache).
	must(t, k8s.Delete(ctx, s))
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestInsecureEndpointRefusedWithoutFlag(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds")
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	e := &Endpoints{AllowInsecure: false, Allowed: suiteAllowedHosts}
	if err := e.check(f.url); endpointReason(err) != v1alpha1.ReasonInvalidEndpoint || strings.Contains(err.Error(), f.url) {
		t.Fatalf("plain http accepted or echoed: %v", err)
	}
	if err := e.check("https://user:pw@thingspace.verizon.com"); err == nil || strings.Contains(err.Error(), "pw") {
		t.Fatalf("user info accepted or echoed: %v", err)
	}
}

func TestRevokeOnDelete(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RevokeOnDelete = true })
	a := f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if len(a.Finalizers) != 1 || a.Finalizers[0] != v1alpha1.RevokeFinalizer {
		t.Fatalf("finalizers: %v", a.Finalizers)
	}
	tok, _, _ := f.token("app-token")
	must(t, k8s.Delete(ctx, a))
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(a), &v1alpha1.ThingSpaceApp{})
		if isNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("app not deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f.revokeCalls() != 1 || f.sim.ValidBearer(tok) {
		t.Fatalf("revokes = %d, token still valid = %v", f.revokeCalls(), f.sim.ValidBearer(tok))
	}
}

func TestSchemaValidation(t *testing.T) {
	f := newFixture(t)
	bad := []func(*v1alpha1.ThingSpaceApp){
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.RenewBefore = &metav1.Duration{Duration: -time.Second} },
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.RenewBefore = &metav1.Duration{} },
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = "ftp://x" },
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = "https://x/?q=1" },
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.SecretName = "creds" },
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.SecretName = "Not_A_Name" },
		func(a *v1alpha1.ThingSpaceApp) {
			a.Spec.SecretTemplate = &v1alpha1.SecretTemplate{Labels: map[string]string{v1alpha1.ManagedByLabel: "me"}}
		},
		// A consumer of a ClusterThingSpaceApp names no credentials, endpoint or CA of its own.
		func(a *v1alpha1.ThingSpaceApp) {
			a.Spec.ClusterAppRef = &v1alpha1.ClusterObjectReference{Name: "shared"}
		},
		func(a *v1alpha1.ThingSpaceApp) { a.Spec.CredentialsSecretRef = nil },
		func(a *v1alpha1.ThingSpaceApp) {
			a.Spec.CredentialsSecretRef, a.Spec.ClusterAppRef = nil, &v1alpha1.ClusterObjectReference{Name: "shared"}
			a.Spec.Endpoint = "https://elsewhere.example"
		},
		func(a *v1alpha1.ThingSpaceApp) {
			a.Spec.CredentialsSecretRef, a.Spec.ClusterAppRef = nil, &v1alpha1.ClusterObjectReference{Name: "shared"}
			a.Spec.CABundle = []byte("pem")
		},
	}
	for i, m := range bad {
		a := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bad"},
			Spec: v1alpha1.ThingSpaceAppSpec{CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}, SecretName: "out"}}
		m(a)
		if err := k8s.Create(ctx, a); err == nil {
			t.Errorf("case %d: invalid spec accepted", i)
			_ = k8s.Delete(ctx, a)
		}
	}
	good := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "good"},
		Spec: v1alpha1.ThingSpaceAppSpec{CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}, SecretName: "out",
			RenewBefore: &metav1.Duration{Duration: 2 * time.Second}}}
	must(t, k8s.Create(ctx, good))
	// No server-side default: a consumer must be able to leave endpoint unset, and GitOps tools see no
	// field they did not write. Empty means DefaultThingSpaceEndpoint in the code.
	if good.Spec.Endpoint != "" {
		t.Fatalf("endpoint defaulted by the schema to %q", good.Spec.Endpoint)
	}
	consumer := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "consumer"},
		Spec: v1alpha1.ThingSpaceAppSpec{ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: "shared"}, SecretName: "out2"}}
	must(t, k8s.Create(ctx, consumer))
	patch := client.MergeFrom(good.DeepCopy())
	good.Spec.SecretName = "other"
	if err := k8s.Patch(ctx, good, patch); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("secretName change: %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
