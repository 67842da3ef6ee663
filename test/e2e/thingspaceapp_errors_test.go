package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestRejectedCredentials: a wrong secret is tried at most twice and then left alone until the
// credentials Secret changes; fixing it recovers.
func TestRejectedCredentials(t *testing.T) {
	t.Parallel()
	const key = "rejected-key"
	secret := "rejected-" + randHex(12)
	wrong := "wrong-" + randHex(12)
	sim := newSim(t, lifetime.String(), key+":"+secret)
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, wrong)
	createApp(t, harness.NewApp(ns, "app", sim.URL, "creds", "token"))

	app := waitApp(t, ns, "app", 30*time.Second, "Ready=False reason "+v1alpha1.ReasonCredentialsRejected, func(a *v1alpha1.ThingSpaceApp) bool {
		if n := calls(t, sim, harness.RouteToken, 0); n > 2 {
			t.Fatalf("%d token requests with a wrong secret, want at most 2; status: %s", n, describe(a))
		}
		ready, reason := harness.Ready(a)
		return !ready && reason == v1alpha1.ReasonCredentialsRejected
	})
	if app.Status.RejectedCredentialsVersion == "" {
		t.Errorf("status.rejectedCredentialsVersion is empty")
	}
	n := calls(t, sim, harness.RouteToken, 0)
	if n < 1 || n > 2 || calls(t, sim, harness.RouteToken, 401) != n {
		t.Errorf("token requests with the wrong secret: %v, want 1 or 2, all 401", stats(t, sim))
	}
	// Nothing more over several lifetimes: no retry loop, no backoff, no timer.
	time.Sleep(2*lifetime + time.Second)
	if m := calls(t, sim, harness.RouteToken, 0); m != n {
		t.Errorf("token requests went from %d to %d while the credentials were unchanged: %v", n, m, stats(t, sim))
	}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("target Secret exists (err %v), want none without a token", err)
	}
	waitCondition(t, ns, "app", metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected, time.Second)

	// Fixing the credentials Secret is enough: the operator watches it.
	creds := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "creds"}, creds); err != nil {
		t.Fatal(err)
	}
	creds.Data[v1alpha1.CredentialsKeySecret] = []byte(secret)
	if err := k8s.Update(t.Context(), creds); err != nil {
		t.Fatalf("fix credentials: %v", err)
	}
	fixed := time.Now()
	app = waitCondition(t, ns, "app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	t.Logf("Ready %v after the credentials were fixed", time.Since(fixed).Round(10*time.Millisecond))
	readToken(t, ns, "token")
	if got := calls(t, sim, harness.RouteToken, 200); got != 1 {
		t.Errorf("successful token requests = %d, want 1: %v", got, stats(t, sim))
	}
	if app.Status.RejectedCredentialsVersion != "" || app.Status.FailedRefreshAttempts != 0 {
		t.Errorf("status after recovery: rejectedCredentialsVersion %q, failedRefreshAttempts %d; want both cleared",
			app.Status.RejectedCredentialsVersion, app.Status.FailedRefreshAttempts)
	}
}

// TestMissingCredentials: a missing credentials Secret is reported, and creating it is noticed at once.
func TestMissingCredentials(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createApp(t, harness.NewApp(ns, "app", shared.URL, "creds", "token"))
	app := waitCondition(t, ns, "app", metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, 30*time.Second)
	if app.Status.RenewalTime != nil {
		t.Errorf("status.renewalTime = %v, want none: nothing is planned without credentials", app.Status.RenewalTime)
	}

	createCredentials(t, ns, "creds", sharedKey, sharedSecret)
	created := time.Now()
	// Watch-driven: the operator has no timer running for this app, so only the watch can wake it.
	waitCondition(t, ns, "app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 5*time.Second)
	t.Logf("Ready %v after the credentials Secret was created", time.Since(created).Round(10*time.Millisecond))
	readToken(t, ns, "token")
}

// TestRevokeOnDelete: with revokeOnDelete the app carries a finalizer, and deleting it revokes the
// token once upstream before the object goes.
func TestRevokeOnDelete(t *testing.T) {
	t.Parallel()
	const key = "revoke-key"
	secret := "revoke-" + randHex(12)
	sim := newSim(t, longLifetime, key+":"+secret)
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)
	app := harness.NewApp(ns, "app", sim.URL, "creds", "token")
	app.Spec.RevokeOnDelete = true
	createApp(t, app)

	waitApp(t, ns, "app", 30*time.Second, "the finalizer and Ready", func(a *v1alpha1.ThingSpaceApp) bool {
		ready, _ := harness.Ready(a)
		return ready && controllerutil.ContainsFinalizer(a, v1alpha1.RevokeFinalizer)
	})
	tok, _ := readToken(t, ns, "token")
	if n := calls(t, sim, harness.RouteRevoke, 0); n != 0 {
		t.Fatalf("revoke requests before deletion = %d, want 0", n)
	}

	if err := k8s.Delete(t.Context(), getApp(t, ns, "app")); err != nil {
		t.Fatalf("delete: %v", err)
	}
	err := harness.WaitFor(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "app"}, &v1alpha1.ThingSpaceApp{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		a := &v1alpha1.ThingSpaceApp{}
		_ = k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "app"}, a)
		t.Fatalf("the app was not deleted: %v; finalizers %v, status %s", err, a.Finalizers, describe(a))
	}
	if n, ok := calls(t, sim, harness.RouteRevoke, 0), calls(t, sim, harness.RouteRevoke, 200); n != 1 || ok != 1 {
		t.Errorf("revoke requests = %v, want exactly one, answered 200", stats(t, sim))
	}
	// The revoke ended the token upstream: the next client gets another.
	live, _, err := sim.RequestToken(t.Context(), key, secret)
	if err != nil {
		t.Fatalf("ask the simulator for a token: %v", err)
	}
	sensitive.Add("a token", live)
	if live == tok {
		t.Errorf("the deleted app's token is still live upstream: it was not revoked")
	}
}

// TestSecretConflict: a Secret the operator does not manage is never overwritten; once it is gone the
// operator writes its own.
func TestSecretConflict(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", sharedKey, sharedSecret)
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token", Labels: map[string]string{"team": "payments"}},
		Data:       map[string][]byte{v1alpha1.SecretKeyAccessToken: []byte("not-ours"), "other": []byte("keep me")},
	}
	if err := k8s.Create(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	createApp(t, harness.NewApp(ns, "app", shared.URL, "creds", "token"))

	waitCondition(t, ns, "app", metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, 30*time.Second)
	time.Sleep(time.Second) // give a wrong write the time to happen
	got := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "token"}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != foreign.ResourceVersion || len(got.OwnerReferences) != 0 ||
		string(got.Data[v1alpha1.SecretKeyAccessToken]) != "not-ours" || len(got.Data) != 2 || len(got.Labels) != 1 {
		t.Errorf("the foreign Secret was modified: resourceVersion %s→%s, labels %v, ownerReferences %v, data keys %d",
			foreign.ResourceVersion, got.ResourceVersion, got.Labels, got.OwnerReferences, len(got.Data))
	}
	waitCondition(t, ns, "app", metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, time.Second)

	// The operator watches the name it wants to write: the conflict clears when the Secret goes.
	if err := k8s.Delete(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	readToken(t, ns, "token")
}

// TestSameTokenAtExpiry (issue 8 scenario 12): a gateway that, at the end of a token's life, answers
// with the same token and expires_in 0 (the simulator's --token-expiry-grace) gets asked again shortly:
// no RefreshFailed warning, no Ready=False, and the new token once the platform lets the old one go.
func TestSameTokenAtExpiry(t *testing.T) {
	t.Parallel()
	const key = "same-token-key"
	secret := "same-token-" + randHex(12)
	grace := 2 * time.Second
	sim := newSim(t, lifetime.String(), key+":"+secret, "--token-expiry-grace="+grace.String())
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)
	createApp(t, harness.NewApp(ns, "app", sim.URL, "creds", "token"))
	waitReady(t, ns, "app")
	first, exp := readToken(t, ns, "token")
	sensitive.Add("a token", first)

	deadline := exp.Add(grace + 3*time.Second)
	for {
		app := getApp(t, ns, "app")
		if ready, reason := harness.Ready(app); !ready {
			t.Fatalf("Ready=False (%s) around the same-token answers: %s", reason, describe(app))
		}
		if tok, _ := readToken(t, ns, "token"); tok != first {
			sensitive.Add("a token", tok)
			if early := exp.Add(grace - time.Second); time.Now().Before(early) {
				t.Fatalf("a new token before the grace ended: the same-token path was not exercised")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new token %v after the grace; %v", grace+3*time.Second, stats(t, sim))
		}
		time.Sleep(50 * time.Millisecond)
	}
	list := &corev1.EventList{}
	if err := k8s.List(t.Context(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Reason == v1alpha1.EventRefreshFailed {
			t.Errorf("a RefreshFailed event for an expires_in 0 answer: %s", e.Message)
		}
	}
	// The first token, one call at expiry, up to four in the second after it (the contract's last
	// second, every 250 ms), then one a second until the grace is over; a little slack.
	if n := calls(t, sim, harness.RouteToken, 0); n > 8 {
		t.Errorf("%d token requests around one expiry: %v", n, stats(t, sim))
	}
}
