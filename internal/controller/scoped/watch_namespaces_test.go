package scoped

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const (
	appKey, appSecret = "wn-key", "wn-S3cret-value"
	uwsUser, uwsPass  = "wn-uws-user", "wn-UWS-pass-value"
)

// TestWatchNamespacesWithOnlyNamespacedRights runs the manager with --watch-namespaces=wn-a (plus its
// own namespace, where the cluster kinds' Secrets live) as a ServiceAccount holding exactly
// config/watch-namespaces' rights: the generated Role in wn-a and wn-operator, the generated ClusterRole
// cluster-wide, nothing on Secrets or the namespaced kinds anywhere else. A ThingSpaceApp, an
// M2MSession and a consumer of a ClusterThingSpaceApp (whose Secrets are in wn-operator) in wn-a become
// Ready; the same in wn-b are never reconciled (no status, no Secret, no upstream call); and no request
// of the manager is Forbidden.
func TestWatchNamespacesWithOnlyNamespacedRights(t *testing.T) {
	ctx := t.Context()
	opns, a, b := namespace(t, "wn-operator"), namespace(t, "wn-a"), namespace(t, "wn-b")
	watched := []string{a, opns}

	must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: opns, Name: "manager"}}))
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: opns, Name: "manager"}}
	var role rbacv1.Role
	readYAML(t, "../../../config/watch-namespaces/rbac/manager_role.yaml", &role)
	for _, ns := range watched {
		r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wn-manager"}, Rules: role.Rules}
		must(t, k8s.Create(ctx, r))
		must(t, k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wn-manager"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name}, Subjects: subject}))
	}
	var cluster rbacv1.ClusterRole
	readYAML(t, "../../../config/watch-namespaces/rbac/manager_cluster_role.yaml", &cluster)
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "wn-manager"}, Rules: cluster.Rules}
	must(t, k8s.Create(ctx, cr))
	must(t, k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "wn-manager"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}, Subjects: subject}))
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), cr)
		_ = k8s.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "wn-manager"}})
	})

	sim := simulator.New(simulator.Config{Apps: map[string]string{appKey: appSecret}, M2MUsers: map[string]string{uwsUser: uwsPass}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for _, ns := range []string{a, b} {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-creds"},
			Data: map[string][]byte{"key": []byte(appKey), "secret": []byte(appSecret)}}))
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uws"},
			Data: map[string][]byte{"username": []byte(uwsUser), "password": []byte(uwsPass)}}))
		must(t, k8s.Create(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
			Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: srv.URL, SecretName: "app-token",
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "app-creds"}}}))
		must(t, k8s.Create(ctx, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "session"},
			Spec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: "app"},
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws"}, SecretName: "session-token"}}))
	}

	// A ClusterThingSpaceApp (its credentials in the cluster resource namespace, which the manager
	// watches without being told) consumed from wn-a and from wn-b: only wn-a's consumer is served.
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opns, Name: "shared-creds"},
		Data: map[string][]byte{"key": []byte(appKey), "secret": []byte(appSecret)}}))
	shared := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "wn-shared"},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{Endpoint: srv.URL, SecretName: "shared-token",
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "shared-creds"}},
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{a, b}}}}
	must(t, k8s.Create(ctx, shared))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), shared) })
	for _, ns := range []string{a, b} {
		must(t, k8s.Create(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "consumer"},
			Spec: v1alpha1.ThingSpaceAppSpec{SecretName: "consumer-token", ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: shared.Name}}}))
	}

	// The manager as that ServiceAccount; klog (client-go's reflectors, the event broadcaster) writes
	// to the same log, so a Forbidden list, watch or event shows up there.
	klog.SetLogger(ctrl.Log)
	asManager := rest.CopyConfig(cfg)
	asManager.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + opns + ":manager"}
	mgr, err := ctrl.NewManager(asManager, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: controller.CacheOptionsFor(watched)})
	must(t, err)
	must(t, controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), MaxConcurrentReconciles: 2,
		UpstreamTimeout: 5 * time.Second, SkipNameValidation: true, WatchNamespaces: watched, ClusterResourceNamespace: opns}))
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitReady(t, &v1alpha1.ThingSpaceApp{}, a, "app")
	waitReady(t, &v1alpha1.M2MSession{}, a, "session")
	waitReady(t, &v1alpha1.ThingSpaceApp{}, a, "consumer")
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: opns, Name: "shared-token"}, &corev1.Secret{}))
	for _, s := range []string{"app-token", "session-token", "consumer-token"} {
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: a, Name: s}, &corev1.Secret{}))
	}
	tokens, logins := sim.Stats().Total("POST /api/ts/v1/oauth2/token"), sim.Stats().Total("POST /api/m2m/v1/session/login")

	// wn-b's objects were created before wn-a's were reconciled; give the manager a moment more.
	time.Sleep(2 * time.Second)
	for _, c := range []struct {
		o    client.Object
		name string
	}{{&v1alpha1.ThingSpaceApp{}, "app"}, {&v1alpha1.M2MSession{}, "session"}, {&v1alpha1.ThingSpaceApp{}, "consumer"}} {
		o, name := c.o, c.name
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: b, Name: name}, o))
		if conds := conditions(o); len(conds) != 0 || len(o.GetFinalizers()) != 0 {
			t.Errorf("%s %s/%s outside --watch-namespaces was reconciled: conditions %v, finalizers %v", typeName(o), b, name, conds, o.GetFinalizers())
		}
	}
	for _, s := range []string{"app-token", "session-token", "consumer-token"} {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: b, Name: s}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("Secret %s/%s outside --watch-namespaces: %v, want NotFound", b, s, err)
		}
	}
	// wn-a's app and the cluster app share the key: the broker fetches once.
	if now := sim.Stats().Total("POST /api/ts/v1/oauth2/token"); now != tokens || tokens > 2 {
		t.Errorf("token requests: %d when wn-a's were Ready, %d now; want at most 2 (wn-a's app, the cluster app), none later", tokens, now)
	}
	if now := sim.Stats().Total("POST /api/m2m/v1/session/login"); now != logins || logins != 1 {
		t.Errorf("logins: %d when wn-a's session was Ready, %d now; want 1 (wn-a's only)", logins, now)
	}
	if l := strings.ToLower(logs.String()); strings.Contains(l, "forbidden") {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				t.Errorf("the manager was refused: %.400s", line)
			}
		}
	}
}

func waitReady(t *testing.T, o client.Object, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, o); err == nil &&
			meta.IsStatusConditionTrue(conditions(o), v1alpha1.ConditionReady) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s %s/%s never became Ready: %v\nmanager log tail: %s", typeName(o), ns, name, conditions(o), tail(logs.String(), 3000))
}

func conditions(o client.Object) []metav1.Condition {
	switch x := o.(type) {
	case *v1alpha1.ThingSpaceApp:
		return x.Status.Conditions
	case *v1alpha1.M2MSession:
		return x.Status.Conditions
	}
	return nil
}

func typeName(o client.Object) string {
	switch o.(type) {
	case *v1alpha1.ThingSpaceApp:
		return "ThingSpaceApp"
	case *v1alpha1.M2MSession:
		return "M2MSession"
	}
	return "object"
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	must(t, err)
	must(t, yaml.Unmarshal(raw, into))
}

// A watch list without the cluster resource namespace would hide the cluster kinds' Secrets from the
// caches: Setup refuses it (main adds that namespace to --watch-namespaces by itself).
func TestWatchNamespacesMustIncludeTheClusterResourceNamespace(t *testing.T) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: controller.CacheOptionsFor([]string{"wn-only"})})
	must(t, err)
	err = controller.Setup(mgr, controller.Options{SkipNameValidation: true, WatchNamespaces: []string{"wn-only"}, ClusterResourceNamespace: "wn-elsewhere"})
	if err == nil || !strings.Contains(err.Error(), "wn-elsewhere") {
		t.Errorf("Setup = %v, want an error naming the cluster resource namespace", err)
	}
}
