package controller

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// cloudSecrets collects every code and token the cloud tests saw, for the leak test.
var cloudSecrets struct {
	mu     sync.Mutex
	values []string
}

func sawSecret(vs ...string) {
	cloudSecrets.mu.Lock()
	defer cloudSecrets.mu.Unlock()
	for _, v := range vs {
		if v != "" {
			cloudSecrets.values = append(cloudSecrets.values, v)
		}
	}
}

func newCloudFixture(t *testing.T, access time.Duration) *fixture {
	return newFixtureConfig(t, simulator.Config{TokenLifetime: lifetime, CloudAccessTokenLifetime: access})
}

func (f *fixture) cloudAuth(name string, mutate ...func(*v1alpha1.CloudAuthorization)) {
	f.t.Helper()
	ca := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1alpha1.CloudAuthorizationSpec{
			Endpoint:             f.url + "/cloud/1",
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
			CallbackURL:          callbackURL,
			SecretName:           name + "-tokens",
		},
	}
	for _, m := range mutate {
		m(ca)
	}
	must(f.t, k8s.Create(context.Background(), ca))
}

func (f *fixture) getCloud(name string) *v1alpha1.CloudAuthorization {
	f.t.Helper()
	ca := &v1alpha1.CloudAuthorization{}
	must(f.t, k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, ca))
	return ca
}

// waitCloud waits until condition typ of the CloudAuthorization has status and reason.
func (f *fixture) waitCloud(name, typ string, status metav1.ConditionStatus, reason string, within time.Duration) *v1alpha1.CloudAuthorization {
	f.t.Helper()
	var last *metav1.Condition
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ca := f.getCloud(name)
		last = meta.FindStatusCondition(ca.Status.Conditions, typ)
		if last != nil && last.Status == status && last.Reason == reason {
			return ca
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("%s/%s: %s never became %s/%s; last: %+v", f.ns, name, typ, status, reason, last)
	return nil
}

func (f *fixture) cloudSecret(name string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
		return nil
	}
	sawSecret(string(s.Data[KeyAccessToken]), string(s.Data[KeyRefreshToken]))
	return s
}

func (f *fixture) authorizeCloud(name string) *v1alpha1.CloudAuthorization {
	f.t.Helper()
	f.waitCloud(name, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, 10*time.Second)
	u := f.waitURL(name, "")
	if status, page := land(f.t, browserConsent(f.t, u)); status != http.StatusOK || !strings.Contains(page, "complete") {
		f.t.Fatalf("callback answered %d: %s", status, page)
	}
	return f.waitCloud(name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestCloudRefreshesAheadOfExpiryWithoutReuseAndTokensStayValid(t *testing.T) {
	f := newCloudFixture(t, 3*time.Second)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	f.authorizeCloud("photos")

	// Watch the Secret for 7s (two refreshes at two thirds of a 3s lifetime, at least): the token in
	// it must be valid upstream at every look.
	deadline := time.Now().Add(7 * time.Second)
	seen := map[string]bool{}
	for time.Now().Before(deadline) {
		s := f.cloudSecret("photos-tokens")
		at := string(s.Data[KeyAccessToken])
		if !f.sim.ValidCloudAccessToken(at) {
			t.Fatal("the Secret held an access token that was not valid upstream")
		}
		seen[at] = true
		time.Sleep(100 * time.Millisecond)
	}
	st := f.sim.CloudStats()
	if st.Refreshes < 2 || len(seen) < 3 {
		t.Fatalf("expected at least two refreshes in 7s: %+v, %d tokens seen", st, len(seen))
	}
	if st.Refreshes > 7 {
		t.Fatalf("too many refreshes for a 3s token in 7s: %+v", st)
	}
	if st.RefreshTokenReuses != 0 || st.InvalidGrants != 0 {
		t.Fatalf("a refresh token was sent twice: %+v", st)
	}
	evs := &corev1.EventList{}
	must(t, k8s.List(context.Background(), evs, client.InNamespace(f.ns)))
	refreshed := 0
	for _, e := range evs.Items {
		if e.Reason == v1alpha1.EventRefreshed && e.Type == corev1.EventTypeNormal {
			refreshed++
		}
	}
	if refreshed == 0 {
		t.Fatal("no Refreshed event")
	}
}

func TestCloudKeepAliveRefreshesLongLivedTokens(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos", func(ca *v1alpha1.CloudAuthorization) {
		ca.Spec.RefreshTokenKeepAlive = &metav1.Duration{Duration: 2 * time.Second}
	})
	f.authorizeCloud("photos")
	time.Sleep(5 * time.Second)
	st := f.sim.CloudStats()
	if st.Refreshes < 2 || st.Refreshes > 3 {
		t.Fatalf("keep-alive of 2s with 1h tokens: want 2-3 refreshes in 5s, got %+v", st)
	}
	if st.RefreshTokenReuses != 0 {
		t.Fatalf("reuse: %+v", st)
	}
}

func TestCloudRefreshRequestAndRevokedGrant(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	f.authorizeCloud("photos")
	before := f.sim.CloudStats().Refreshes

	// A workload that got a 401 asks for a refresh.
	ca := f.getCloud("photos")
	patch := client.MergeFrom(ca.DeepCopy())
	ca.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "1"}
	must(t, k8s.Patch(context.Background(), ca, patch))
	deadline := time.Now().Add(10 * time.Second)
	for f.sim.CloudStats().Refreshes != before+1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if got := f.sim.CloudStats().Refreshes; got != before+1 {
		t.Fatalf("refresh request: %d refreshes, want exactly one more than %d", got, before)
	}

	// The person removes the app from their account: the next refresh is refused.
	if n := f.sim.RevokeCloudGrants(f.key); n == 0 {
		t.Fatal("nothing to revoke")
	}
	patch = client.MergeFrom(ca.DeepCopy())
	ca.Annotations[v1alpha1.RefreshRequestedAnnotation] = "2"
	must(t, k8s.Patch(context.Background(), ca, patch))
	f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, 10*time.Second)
	link := f.waitURL("photos", "")
	if s := f.cloudSecret("photos-grant"); len(s.Data[KeyRefreshToken]) != 0 {
		t.Fatal("the dead refresh token was left in the grant Secret")
	}
	grants := f.sim.CloudStats().InvalidGrants
	time.Sleep(time.Second)
	if got := f.sim.CloudStats().InvalidGrants; got != grants || grants != 1 {
		t.Fatalf("a refused refresh token was retried: %d invalid grants, then %d", grants, got)
	}
	// Consent again and all is well.
	if status, _ := land(t, browserConsent(t, link)); status != http.StatusOK {
		t.Fatalf("re-consent answered %d", status)
	}
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestCloudBootstrapFromAnExistingRefreshToken(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	// Obtain a refresh token outside the operator, as the SDK would have.
	f.sim.SetCloudApp(f.key, f.secret, "https://sdk.example/Callback")
	rt := sdkRefreshToken(t, f, "https://sdk.example/Callback")
	f.sim.SetCloudApp(f.key, f.secret, callbackURL)

	f.credentials("creds", f.key, f.secret)
	must(t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "photos-grant", Annotations: map[string]string{v1alpha1.AdoptAnnotation: "true"}},
		Data:       map[string][]byte{KeyRefreshToken: []byte(rt)},
	}))
	f.cloudAuth("photos")
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	s := f.cloudSecret("photos-grant")
	if string(s.Data[KeyRefreshToken]) == rt || metav1.GetControllerOf(s) == nil || s.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
		t.Fatalf("bootstrap Secret not adopted and rotated: labels %v", s.Labels)
	}
	f.checkPublished("photos")
	if got := f.sim.CloudStats(); got.Refreshes != 1 || got.RefreshTokenReuses != 0 {
		t.Fatalf("bootstrap: %+v", got)
	}
}

func TestCloudInterruptedRefreshIsNeverRetried(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	// A Secret left by a manager that died after sending this refresh token: Verizon may have rotated it.
	must(t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "photos-grant",
			Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano),
				v1alpha1.AdoptAnnotation: "true"}},
		Data: map[string][]byte{KeyRefreshToken: []byte("possibly-rotated-refresh-token")},
	}))
	f.cloudAuth("photos")
	ca := f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, 10*time.Second)
	if !strings.Contains(meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized).Message, "interrupted") {
		t.Fatalf("message: %+v", ca.Status.Conditions)
	}
	if got := f.sim.CloudStats(); got.Refreshes != 0 || got.InvalidGrants != 0 {
		t.Fatalf("the possibly rotated refresh token was sent: %+v", got)
	}
	s := f.cloudSecret("photos-grant")
	if len(s.Data[KeyRefreshToken]) != 0 || s.Annotations[v1alpha1.RefreshStartedAnnotation] != "" {
		t.Fatalf("Secret after an interrupted refresh: data %v, annotations %v", keys(s.Data), s.Annotations)
	}
}

func TestCloudTransientRefreshFailureHonoursRetryAfter(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	f.authorizeCloud("photos")
	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second})
	ca := f.getCloud("photos")
	patch := client.MergeFrom(ca.DeepCopy())
	ca.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "now"}
	must(t, k8s.Patch(context.Background(), ca, patch))
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing, 10*time.Second)
	failed := f.sim.Stats().Count("POST /cloud/1/oauth2/token", http.StatusServiceUnavailable)
	time.Sleep(1500 * time.Millisecond)
	if got := f.sim.Stats().Count("POST /cloud/1/oauth2/token", http.StatusServiceUnavailable); got != failed {
		t.Fatalf("retried before Retry-After: %d then %d", failed, got)
	}
	f.sim.SetFaults(simulator.Faults{})
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if got := f.sim.CloudStats(); got.RefreshTokenReuses != 0 || got.InvalidGrants != 0 {
		t.Fatalf("retry after 503 reused a token: %+v", got)
	}
}

func TestCloudSchemaValidation(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	bad := []func(*v1alpha1.CloudAuthorization){
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.CallbackURL = "" },
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.CallbackURL = "not a url" },
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.SecretName = "creds" },
		// The operator's own Secrets of the object ("bad"): the consent link and the grant.
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.SecretName = "bad-grant" },
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.SecretName = "bad-consent" },
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.CredentialsSecretRef.Name = "bad-grant" },
		func(ca *v1alpha1.CloudAuthorization) { ca.Spec.RenewBefore = &metav1.Duration{} },
		func(ca *v1alpha1.CloudAuthorization) {
			ca.Spec.RefreshTokenKeepAlive = &metav1.Duration{Duration: -time.Second}
		},
	}
	for i, m := range bad {
		ca := &v1alpha1.CloudAuthorization{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bad"},
			Spec: v1alpha1.CloudAuthorizationSpec{
				CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
				CallbackURL:          "https://example.com/Callback",
				SecretName:           "tokens",
			},
		}
		m(ca)
		if err := k8s.Create(context.Background(), ca); err == nil {
			t.Errorf("case %d: accepted %+v", i, ca.Spec)
			_ = k8s.Delete(context.Background(), ca)
		}
	}
	good := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "good"},
		Spec: v1alpha1.CloudAuthorizationSpec{
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
			CallbackURL:          "https://Example.com/OAuth/Callback",
			SecretName:           "tokens",
		},
	}
	must(t, k8s.Create(context.Background(), good))
	if good.Spec.Endpoint != v1alpha1.DefaultCloudEndpoint || good.Spec.RefreshTokenKeepAlive == nil ||
		good.Spec.RefreshTokenKeepAlive.Duration != 168*time.Hour || good.Spec.CallbackURL != "https://Example.com/OAuth/Callback" {
		t.Fatalf("defaults: %+v", good.Spec)
	}
}

func TestCloudAdoptsACompleteSecretWithoutRefreshing(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.sim.SetCloudApp(f.key, f.secret, "https://sdk.example/Callback")
	rt := sdkRefreshToken(t, f, "https://sdk.example/Callback")
	f.sim.SetCloudApp(f.key, f.secret, callbackURL)
	f.credentials("creds", f.key, f.secret)
	// A Secret copied from elsewhere: refresh token, a live access token and its expiry.
	must(t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "photos-grant", Annotations: map[string]string{v1alpha1.AdoptAnnotation: "true"}},
		Data: map[string][]byte{
			KeyRefreshToken: []byte(rt), KeyAccessToken: []byte("copied-access-token"), KeyTokenType: []byte("Bearer"),
			KeyExpiresAt: []byte(formatExpiry(time.Now().Add(30 * time.Minute))),
		},
	}))
	f.cloudAuth("photos")
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	time.Sleep(time.Second)
	s := f.cloudSecret("photos-grant")
	if metav1.GetControllerOf(s) == nil || string(s.Data[KeyRefreshToken]) != rt {
		t.Fatal("the complete Secret was not adopted as it is")
	}
	if w := f.checkPublished("photos"); string(w.Data[KeyAccessToken]) != "copied-access-token" {
		t.Fatal("the adopted access token was not published")
	}
	if got := f.sim.CloudStats(); got.Refreshes != 0 {
		t.Fatalf("a live access token was refreshed at once: %+v", got)
	}
}
