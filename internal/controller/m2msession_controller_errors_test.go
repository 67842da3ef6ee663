package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/lockout"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/passwords"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// fakeSessionWorld is an M2MSession with a Ready app and UWS credentials in a fake API server whose
// reads of the credentials Secret fail with credsErr.
func fakeSessionWorld(t *testing.T, now time.Time, credsErr error) (*M2MSessionReconciler, client.Client, types.NamespacedName) {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	const ns = "fake"
	app := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", UID: "app-uid"},
		Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: "http://127.0.0.1:1", CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "app-creds"}, SecretName: "app-token"}}
	appTok := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-token",
		Labels:          map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ThingSpaceApp", Name: "app", UID: "app-uid", Controller: ptr.To(true)}}},
		Data: map[string][]byte{KeyAccessToken: []byte("app-token-value"), KeyExpiresAt: []byte(formatExpiry(now.Add(time.Hour)))}}
	uws := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uws"},
		Data: map[string][]byte{v1alpha1.CredentialsKeyUsername: []byte(uwsUser), v1alpha1.CredentialsKeyPassword: []byte(uwsPassword)}}
	sess := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s", UID: "s-uid", Generation: 1},
		Spec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: "app"},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws"}, SecretName: "s-session", LogoutOnDelete: ptr.To(false)}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app, appTok, uws, sess).
		WithStatusSubresource(&v1alpha1.M2MSession{}).Build()
	reader := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).WithObjects(uws.DeepCopy()).Build(), interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if key.Name == "uws" && credsErr != nil {
				return credsErr
			}
			return cl.Get(ctx, key, obj, opts...)
		},
	})
	clk := clocktesting.NewFakeClock(now)
	r := &M2MSessionReconciler{
		Deps: Deps{Client: c, APIReader: reader, Scheme: scheme, Recorder: &events.FakeRecorder{}, Clock: clk,
			Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff,
			Secrets:   &secrets.Writer{Client: c, Meta: c, Reader: c, Scheme: scheme},
			Endpoints: &Endpoints{HTTP: upstream.NewHTTPClients(time.Second), Clock: clk, AllowInsecure: true, Allowed: suiteAllowedHosts, RequestTimeout: time.Second}},
		Gate:     lockout.New(),
		Pending:  passwords.NewStore(),
		statuses: memo.New[v1alpha1.M2MSessionStatus](),
	}
	return r, c, client.ObjectKeyFromObject(sess)
}

// Issue 8 scenario 15: an API-server error reading the UWS credentials Secret was filed as
// CredentialsNotFound and never retried. Kubernetes API errors are transient: the reconcile returns
// the error (and is retried with the controller's backoff); the condition does not blame the Secret.
func TestScenario15CredentialsReadErrorIsTransient(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for name, apiErr := range map[string]error{
		"unavailable": apierrors.NewServiceUnavailable("etcd is busy"),
		"timeout":     apierrors.NewTimeoutError("slow", 1),
		"forbidden":   apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "uws", nil),
	} {
		t.Run(name, func(t *testing.T) {
			r, c, key := fakeSessionWorld(t, now, apiErr)
			_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
			if err == nil {
				t.Error("Reconcile returned no error: the read is never retried")
			}
			s := &v1alpha1.M2MSession{}
			must(t, c.Get(context.Background(), key, s))
			if cond := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); cond != nil && cond.Reason == v1alpha1.ReasonCredentialsNotFound {
				t.Errorf("Ready = %s/%s: an API error is not a missing Secret", cond.Status, cond.Reason)
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		r, c, key := fakeSessionWorld(t, now, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, "uws"))
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatalf("a missing Secret is a condition, not an error: %v", err)
		}
		s := &v1alpha1.M2MSession{}
		must(t, c.Get(context.Background(), key, s))
		if cond := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); cond == nil || cond.Reason != v1alpha1.ReasonCredentialsNotFound {
			t.Fatalf("Ready = %+v, want CredentialsNotFound", cond)
		}
	})
}
