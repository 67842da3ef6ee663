package cli

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/test/harness"
)

// startOperator runs the real controllers in a manager against the control plane until the test ends.
func startOperator(t *testing.T) {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Scheme: cp.Scheme, Cache: controller.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), UpstreamTimeout: 5 * time.Second,
		SkipNameValidation: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitReady waits until obj's Ready condition has status s.
func waitReady(t *testing.T, obj client.Object, s metav1.ConditionStatus) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	err := harness.WaitFor(context.Background(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if err := cp.Client.Get(context.Background(), key, obj); err != nil {
			return false, err
		}
		row, _ := RowOf(obj)
		return row.Ready == s, nil
	})
	if err != nil {
		t.Fatalf("%s never Ready=%s: %v", key, s, err)
	}
}

// With the real operator, refresh waits for the controllers' own record of the request: the
// ThingSpaceApp rotates its token, the M2MSession logs in again; for rejected credentials the request
// is held, so refresh times out saying so.
func TestRefreshWithTheRealOperator(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns := newNamespace(t, "operator")
	kc := kubeconfig(t, ns, "")
	sim := simulator.New(simulator.Config{Apps: map[string]string{"key-ok": "S3cret-ok"}, M2MUsers: map[string]string{"fleet-uws": "Str0ng!Passw0rd"}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		_ = cp.Client.DeleteAllOf(ctx, &v1alpha1.M2MSession{}, client.InNamespace(ns))
		_ = cp.Client.DeleteAllOf(ctx, &v1alpha1.ThingSpaceApp{}, client.InNamespace(ns))
	})
	secret := func(name string, data map[string]string) {
		s := &corev1.Secret{ObjectMeta: objMeta(ns, name, nil), StringData: data}
		if err := cp.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	secret("ok-creds", map[string]string{"key": "key-ok", "secret": "S3cret-ok"})
	secret("bad-creds", map[string]string{"key": "key-ok", "secret": "wrong"})
	secret("uws-creds", map[string]string{"username": "fleet-uws", "password": "Str0ng!Passw0rd"})
	app := newApp(ns, "app", nil, v1alpha1.ThingSpaceAppStatus{})
	app.Spec.CredentialsSecretRef.Name, app.Spec.Endpoint = "ok-creds", srv.URL
	bad := newApp(ns, "bad", nil, v1alpha1.ThingSpaceAppStatus{})
	bad.Spec.CredentialsSecretRef.Name, bad.Spec.Endpoint = "bad-creds", srv.URL
	sess := newM2M(ns, "uws", nil, v1alpha1.M2MSessionStatus{})
	sess.Spec.CredentialsSecretRef.Name = "uws-creds"
	for _, o := range []client.Object{app, bad, sess} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitReady(t, app, metav1.ConditionTrue)
	waitReady(t, sess, metav1.ConditionTrue)
	waitReady(t, bad, metav1.ConditionFalse)
	tokenBefore, _, err := harness.ReadToken(ctx, cp.Client, ns, app.Spec.SecretName)
	if err != nil {
		t.Fatal(err)
	}
	loginBefore := sess.Status.LastLoginTime.Time

	got := run(t, clock.RealClock{}, Env{PollInterval: 200 * time.Millisecond}, "--kubeconfig", kc, "refresh", "tsapp/app", "--timeout", "30s")
	if got.code != ExitOK || !strings.Contains(got.out, "the operator acted on the refresh: Ready=True") {
		t.Fatalf("refresh tsapp/app: exit %d\n%s%s", got.code, got.out, got.err)
	}
	t.Logf("kubectl thingspace refresh tsapp/app (real operator)\n%s", got.out)
	tokenAfter, _, err := harness.ReadToken(ctx, cp.Client, ns, app.Spec.SecretName)
	if err != nil || tokenAfter == tokenBefore {
		t.Errorf("the token was not rotated (err %v)", err)
	}

	// A new login gets a later lastLoginTime (RFC 3339 seconds): keep the requests a second apart.
	time.Sleep(time.Until(loginBefore.Add(time.Second)))
	got = run(t, clock.RealClock{}, Env{PollInterval: 200 * time.Millisecond}, "--kubeconfig", kc, "refresh", "m2m/uws", "--timeout", "30s")
	if got.code != ExitOK || !strings.Contains(got.out, "the operator acted on the refresh: Ready=True") {
		t.Fatalf("refresh m2m/uws: exit %d\n%s%s", got.code, got.out, got.err)
	}
	if err := cp.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "uws"}, sess); err != nil {
		t.Fatal(err)
	}
	if !sess.Status.LastLoginTime.After(loginBefore) {
		t.Errorf("no new login: lastLoginTime %v, before %v", sess.Status.LastLoginTime, loginBefore)
	}

	// Rejected credentials hold the request until the Secret changes: refresh times out and says why.
	got = run(t, clock.RealClock{}, Env{PollInterval: 200 * time.Millisecond}, "--kubeconfig", kc, "refresh", "tsapp/bad", "--timeout", "3s")
	if got.code != ExitFailure || !strings.Contains(got.err, "timed out after 3s") || !strings.Contains(got.err, "Ready=False (CredentialsRejected)") {
		t.Errorf("refresh tsapp/bad: exit %d\n%s%s", got.code, got.out, got.err)
	}

	got = run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "status")
	lines := strings.Split(strings.TrimSpace(got.out), "\n")
	if got.code != ExitOK || len(lines) != 4 || !strings.HasPrefix(lines[1], "ThingSpaceApp   app ") || !strings.Contains(lines[1], " True ") ||
		!strings.Contains(lines[2], "bad ") || !strings.Contains(lines[2], "CredentialsRejected: ") || !strings.HasPrefix(lines[3], "M2MSession      uws ") {
		t.Errorf("status: exit %d\n%s%s", got.code, got.out, got.err)
	}
	if strings.Contains(got.out, tokenAfter) {
		t.Error("the token reached the output")
	}
	t.Logf("kubectl thingspace status (real operator)\n%s", got.out)
}
