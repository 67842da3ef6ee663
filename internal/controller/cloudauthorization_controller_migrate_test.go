package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Migration from a version that kept the refresh token in the workload's Secret: the grant Secret is
// written first, and refresh_token leaves the workload's Secret only once that write is stored. Each of
// the two writes is refused in turn (a failure between them, and before the first): the grant is never
// lost, no refresh token is sent twice, and the end state is the same.
func TestCloudMigratesTheRefreshTokenOutOfTheWorkloadSecret(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.sim.SetCloudApp(f.key, f.secret, "https://sdk.example/Callback")
	rt := sdkRefreshToken(t, f, "https://sdk.example/Callback")
	f.sim.SetCloudApp(f.key, f.secret, callbackURL)
	f.credentials("creds", f.key, f.secret)

	// The first write (the grant Secret) is refused until the end of step 1.
	restoreGrant := f.refuseSecretWrites("photos-grant")
	f.cloudAuth("photos", func(ca *v1alpha1.CloudAuthorization) {
		ca.Spec.SecretTemplate = &v1alpha1.SecretTemplate{Labels: map[string]string{"team": "photos"}}
	})
	ca := f.getCloud("photos")
	// The Secret as the previous version wrote it: controlled by the CloudAuthorization, all four keys.
	refreshedAt := time.Now().Add(-10 * time.Minute).UTC()
	must(t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "photos-tokens",
			Labels:      map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
			Annotations: map[string]string{v1alpha1.RefreshedAtAnnotation: refreshedAt.Format(time.RFC3339Nano)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "CloudAuthorization",
				Name: ca.Name, UID: ca.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Data: map[string][]byte{
			KeyRefreshToken: []byte(rt), KeyAccessToken: []byte("old-access-token"), KeyTokenType: []byte("Bearer"),
			KeyExpiresAt: []byte(formatExpiry(time.Now().Add(50 * time.Minute))),
		},
	}))

	// Step 1: the grant Secret cannot be written. The workload's Secret keeps its refresh token.
	time.Sleep(2 * time.Second)
	if w := f.cloudSecret("photos-tokens"); string(w.Data[KeyRefreshToken]) != rt {
		t.Fatal("the refresh token left the workload's Secret before the grant Secret held it")
	}
	if f.cloudSecret("photos-grant") != nil {
		t.Fatal("the policy did not refuse the grant Secret; the test proves nothing")
	}

	// Step 2: the first write lands, the second (stripping the workload's Secret) is refused.
	restoreTarget := f.refuseSecretWritesUnless("photos-tokens", "has(object.data) && 'refresh_token' in object.data")
	restoreGrant()
	deadline := time.Now().Add(10 * time.Second)
	for f.cloudSecret("photos-grant") == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	g := f.cloudSecret("photos-grant")
	if g == nil || string(g.Data[KeyRefreshToken]) != rt || string(g.Data[KeyAccessToken]) != "old-access-token" ||
		g.Annotations[v1alpha1.RefreshedAtAnnotation] != refreshedAt.Format(time.RFC3339Nano) || metav1.GetControllerOf(g) == nil {
		t.Fatalf("grant Secret after the first write: %v", g)
	}
	if len(g.Labels) != 1 {
		t.Errorf("the grant Secret carries the template's labels: %v", g.Labels)
	}
	time.Sleep(time.Second)
	if w := f.cloudSecret("photos-tokens"); string(w.Data[KeyRefreshToken]) != rt {
		t.Fatal("the policy did not refuse the second write; the test proves nothing")
	}

	// Step 3: writes work again; the workload's Secret holds only the access token, its type and expiry.
	restoreTarget()
	// The refused writes backed the object off (exponentially, per object); a change of the object
	// brings the next pass at once, as any edit would.
	ca = f.getCloud("photos")
	patch := client.MergeFrom(ca.DeepCopy())
	ca.Annotations = map[string]string{"example.com/nudge": "1"}
	must(t, k8s.Patch(context.Background(), ca, patch))
	deadline = time.Now().Add(10 * time.Second)
	for len(f.cloudSecret("photos-tokens").Data[KeyRefreshToken]) != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	w := f.checkPublished("photos")
	if string(w.Data[KeyAccessToken]) != "old-access-token" || w.Labels["team"] != "photos" {
		t.Fatalf("workload Secret after migration: keys %v, labels %v", keys(w.Data), w.Labels)
	}
	if got := f.sim.CloudStats(); got.Refreshes != 0 {
		t.Fatalf("the migration refreshed a valid token: %+v", got)
	}

	// The grant works from its new home: a refresh rotates it there, once.
	f.requestCloudRefresh("photos", "1")
	f.waitRefreshes(1, 10*time.Second)
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if g := f.cloudSecret("photos-grant"); string(g.Data[KeyRefreshToken]) == rt {
		t.Fatal("the refresh did not rotate the grant Secret's token")
	}
	f.checkPublished("photos")
	if got := f.sim.CloudStats(); got.RefreshTokenReuses != 0 || got.InvalidGrants != 0 {
		t.Fatalf("%+v", got)
	}
}
