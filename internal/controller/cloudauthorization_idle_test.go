package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// countedReader counts the reads past the caches.
type countedReader struct {
	client.Reader
	n *int
}

func (c countedReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	*c.n++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// Issue 13: a CloudAuthorization pass with nothing to do (the grant's access token valid, its Secrets
// and status as they should be) reads nothing past the caches and writes nothing: after a restart
// every object gets one, and each refresh's own writes bring three more. The pass that acts (here the
// adoption of a complete Secret) reads past them as before.
func TestCloudPassWithNothingToDoReadsOnlyTheCaches(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	ca := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos", UID: "uid-photos", Generation: 1},
		Spec: v1alpha1.CloudAuthorizationSpec{Endpoint: "http://127.0.0.1:1/cloud/1", SecretName: "photos-tokens",
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"}, CallbackURL: "http://127.0.0.1:2/oauth2/callback"},
	}
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"},
		Data: map[string][]byte{credKey: []byte("key"), credSecret: []byte("secret")}}
	grant := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos-grant", Annotations: map[string]string{v1alpha1.AdoptAnnotation: "true"}},
		Data: map[string][]byte{KeyRefreshToken: []byte("rt"), KeyAccessToken: []byte("at"), KeyTokenType: []byte("Bearer"),
			KeyExpiresAt: []byte(formatExpiry(clk.Now().Add(30 * time.Minute)))},
	}
	writes := 0
	countWrite := func() { writes++ }
	base := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ca, creds, grant).WithStatusSubresource(ca).WithReturnManagedFields().Build()
	cl := interceptor.NewClient(base, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			countWrite()
			return c.Create(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			countWrite()
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			countWrite()
			return c.Apply(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			countWrite()
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	reads := 0
	past := countedReader{Reader: base, n: &reads}
	r := &CloudAuthorizationReconciler{
		Deps: Deps{Client: cl, APIReader: past, Credentials: base, Scheme: scheme, Recorder: events.NewFakeRecorder(100), Clock: clk,
			Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff, InFlight: &inflight.Tracker{},
			// The fake client is the caches here (Client, Meta) and the API server (Reader, counted).
			Secrets:   &secrets.Writer{Client: cl, Meta: base, Reader: past, Scheme: scheme},
			Endpoints: &Endpoints{HTTP: upstream.NewHTTPClients(time.Second), Clock: clk, AllowInsecure: true, Allowed: suiteAllowedHosts, RequestTimeout: time.Second}},
		Refreshes:     refreshes.New(),
		InFlightBound: time.Minute,
	}
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ca)}); err != nil {
			t.Fatal(err)
		}
	}
	reconcile() // adopts the Secret, publishes its access token, records status
	got := &v1alpha1.CloudAuthorization{}
	must(t, base.Get(context.Background(), client.ObjectKeyFromObject(ca), got))
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || reads == 0 || writes == 0 {
		t.Fatalf("first pass: Ready %+v after %d reads past the caches and %d writes", c, reads, writes)
	}
	reads, writes = 0, 0
	for range 3 {
		reconcile()
		clk.Step(time.Minute)
	}
	if reads != 0 || writes != 0 {
		t.Fatalf("passes with nothing to do: %d reads past the caches, %d writes; want 0 and 0", reads, writes)
	}
}
