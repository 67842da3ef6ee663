package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Issue 8 scenario 15 (app part): an API server error reading the credentials Secret is transient: the
// reconcile returns it (controller-runtime retries with its rate limiter) and sets no condition that
// would wait for a watch. Only a Secret that is not there is CredentialsNotFound. (The ThingSpaceApp
// controller already did this; the test pins it.)
func TestScenario15APIErrorsReadingCredentialsAreTransient(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	gr := schema.GroupResource{Resource: "secrets"}
	cases := []struct {
		name   string
		err    error
		reason string // "" for: the error is returned, no condition
	}{
		{"internal error", apierrors.NewInternalError(errors.New("etcd is sad")), ""},
		{"unavailable", apierrors.NewServiceUnavailable("try later"), ""},
		{"timeout", apierrors.NewTimeoutError("slow", 1), ""},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), ""},
		{"forbidden", apierrors.NewForbidden(gr, "creds", errors.New("rbac")), ""},
		{"not found", apierrors.NewNotFound(gr, "creds"), v1alpha1.ReasonCredentialsNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := &v1alpha1.ThingSpaceApp{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "uid-a", Generation: 1},
				Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: "http://127.0.0.1:1", SecretName: "a-token",
					CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}},
			}
			cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app).WithStatusSubresource(app).Build()
			reads := 0
			reader := interceptor.NewClient(cl, interceptor.Funcs{
				Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, ok := obj.(*corev1.Secret); ok && key.Name == "creds" {
						reads++
						return c.err
					}
					return cl.Get(ctx, key, obj, opts...)
				},
			})
			clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
			r := &ThingSpaceAppReconciler{
				Deps: Deps{Client: cl, APIReader: reader, Scheme: scheme, Recorder: events.NewFakeRecorder(10), Clock: clk,
					Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff,
					Secrets:   &secrets.Writer{Client: cl, Meta: cl, Reader: cl, Scheme: scheme},
					Endpoints: &Endpoints{HTTP: upstream.NewHTTPClients(time.Second), Clock: clk, AllowInsecure: true, Allowed: suiteAllowedHosts, RequestTimeout: time.Second}},
				Broker:   tokenbroker.New(clk, nil),
				statuses: memo.New[v1alpha1.ThingSpaceAppStatus](),
			}
			_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)})
			if reads == 0 {
				t.Fatal("the credentials Secret was never read; the test proves nothing")
			}
			got := &v1alpha1.ThingSpaceApp{}
			if gerr := cl.Get(context.Background(), client.ObjectKeyFromObject(app), got); gerr != nil {
				t.Fatal(gerr)
			}
			cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			if c.reason == "" {
				if err == nil || !errors.Is(err, c.err) {
					t.Fatalf("reconcile error %v, want the API error returned", err)
				}
				// Ready is Unknown from the first pass until known (issue 12 §1): never a verdict.
				if cond != nil && (cond.Status != metav1.ConditionUnknown || cond.Reason != v1alpha1.ReasonPending) {
					t.Fatalf("an API error set a condition that waits: %+v", cond)
				}
				return
			}
			if err != nil || cond == nil || cond.Reason != c.reason {
				t.Fatalf("error %v, condition %+v; want %s and no error", err, cond, c.reason)
			}
		})
	}
}
