package controller

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Issue 11 §1: a restart (a new reconciler, broker and status memory) with the standby key set's token
// in the Secret trusts it through its provenance and makes no upstream call; the next handover goes
// back to the primary with one call.
func TestStandbyRestartReusesTheStandbyToken(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	sim := simulator.New(simulator.Config{Clock: clk, TokenLifetime: time.Hour, Apps: map[string]string{"pk": "primary-secret", "sk": "standby-secret"}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	app := &v1alpha1.ThingSpaceApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "uid-a", Generation: 1},
		Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: srv.URL, SecretName: "a-token",
			CredentialsSecretRef:        &v1alpha1.LocalSecretReference{Name: "creds"},
			StandbyCredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "standby"}},
	}
	creds := func(name, key, secret string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Data: map[string][]byte{credKey: []byte(key), credSecret: []byte(secret)}}
	}
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app, creds("creds", "pk", "primary-secret"), creds("standby", "sk", "standby-secret")).
		WithStatusSubresource(app).Build()
	start := func() *ThingSpaceAppReconciler {
		return &ThingSpaceAppReconciler{
			Deps: Deps{Client: cl, APIReader: cl, Scheme: scheme, Recorder: events.NewFakeRecorder(100), Clock: clk,
				Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff,
				Secrets:   &secrets.Writer{Client: cl, Meta: cl, Reader: cl, Scheme: scheme},
				Endpoints: &Endpoints{HTTP: upstream.NewHTTPClients(time.Second), Clock: clk, AllowInsecure: true, Allowed: suiteAllowedHosts, RequestTimeout: time.Second}},
			Broker:   tokenbroker.New(clk, nil),
			statuses: memo.New[v1alpha1.ThingSpaceAppStatus](),
		}
	}
	reconcile := func(r *ThingSpaceAppReconciler) (string, v1alpha1.ThingSpaceAppStatus) {
		t.Helper()
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)}); err != nil {
			t.Fatal(err)
		}
		got, sec := &v1alpha1.ThingSpaceApp{}, &corev1.Secret{}
		must(t, cl.Get(context.Background(), client.ObjectKeyFromObject(app), got))
		must(t, cl.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "a-token"}, sec))
		return string(sec.Data[KeyAccessToken]), got.Status
	}
	calls := func() int { return sim.Stats().Total("POST /api/ts/v1/oauth2/token") }

	r := start()
	first, st := reconcile(r)
	if st.ActiveKeySet != v1alpha1.KeySetPrimary || st.NextHandoverTime == nil || calls() != 1 {
		t.Fatalf("first pass: %+v, %d calls", st, calls())
	}
	clk.SetTime(st.NextHandoverTime.Time)
	handed, st := reconcile(r)
	if handed == first || st.ActiveKeySet != v1alpha1.KeySetStandby || calls() != 2 {
		t.Fatalf("handover: active %q, %d calls, token changed %v", st.ActiveKeySet, calls(), handed != first)
	}

	// Restarts: each a new process, any number of passes, no upstream call.
	for i := range 2 {
		r = start()
		for range 3 {
			tok, st2 := reconcile(r)
			if tok != handed || st2.ActiveKeySet != v1alpha1.KeySetStandby || calls() != 2 {
				t.Fatalf("restart %d: active %q, %d calls, token kept %v", i+1, st2.ActiveKeySet, calls(), tok == handed)
			}
		}
	}
	_, st = reconcile(r)
	clk.SetTime(st.NextHandoverTime.Time)
	back, st := reconcile(start())
	if back == handed || back == first || st.ActiveKeySet != v1alpha1.KeySetPrimary || calls() != 3 {
		t.Fatalf("handover back after a restart: active %q, %d calls", st.ActiveKeySet, calls())
	}
	if n := sim.Stats().Total("POST /api/ts/v1/oauth2/revoke"); n != 0 {
		t.Fatalf("%d revokes", n)
	}
}
