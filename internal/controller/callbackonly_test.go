package controller

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/callback"
)

// The OAuth2 endpoints in a process of their own (--callback-only) with exactly the rights of
// config/callback-only/callback_role.yaml, as the ServiceAccount of that overlay: a consent refused and
// then given there completes, the suite's manager (the reconcilers, whose callback this CloudAuthorization
// does not use) offers the new link after the refusal and publishes the access token after the grant.
func TestCloudCallbackOnlyProcessWithItsRole(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	cb := "http://" + ln.Addr().String() + callback.Path
	f.sim.SetCloudApp(f.key, f.secret, cb)
	f.credentials("creds", f.key, f.secret)

	const user = "system:serviceaccount:thingspace-operator-system:thingspace-operator-oauth-callback"
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "callback-only", "callback_role.yaml"))
	must(t, err)
	role := &rbacv1.ClusterRole{}
	must(t, yaml.Unmarshal(b, role))
	role.Name += "-" + f.ns
	must(t, k8s.Create(context.Background(), role))
	must(t, k8s.Create(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}))
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name}})
		_ = k8s.Delete(context.Background(), role)
	})
	cfg := rest.CopyConfig(suiteConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	// The role is what it claims: no listing Secrets, no writing a spec.
	as, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	must(t, err)
	if err := as.List(context.Background(), &corev1.SecretList{}, client.InNamespace(f.ns)); !apierrors.IsForbidden(err) {
		t.Fatalf("the callback's role lists Secrets: %v", err)
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: k8s.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}, Cache: CacheOptions()})
	must(t, err)
	must(t, SetupCallbackOnly(mgr, Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: suiteAllowedHosts, UpstreamTimeout: 5 * time.Second, CallbackListener: ln, StateTTL: time.Minute}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	f.cloudAuth("photos", func(ca *v1alpha1.CloudAuthorization) { ca.Spec.CallbackURL = cb })
	first := f.waitURL("photos", "")
	if !strings.HasPrefix(first, "http://"+ln.Addr().String()+"/oauth2/start?") {
		t.Fatalf("the link does not start at the callback-only process")
	}
	// A refusal: the callback-only process spends the state; the reconcilers offer a new link at once.
	f.sim.SetCloudDenyConsent(true)
	if status, page := land(t, browserConsent(t, first)); status != http.StatusOK || !strings.Contains(page, "not granted") {
		t.Fatalf("the denial answered %d: %s", status, page)
	}
	f.sim.SetCloudDenyConsent(false)
	f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied, 10*time.Second)
	second := f.waitURL("photos", first)
	// The consent.
	if status, page := land(t, browserConsent(t, second)); status != http.StatusOK || !strings.Contains(page, "complete") {
		t.Fatalf("the callback-only process answered %d: %s", status, page)
	}
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	f.checkPublished("photos")
	if got := f.sim.CloudStats(); got.CodeExchanges != 1 || got.Denials != 1 {
		t.Fatalf("cloud stats %+v: want one denial and one code exchange", got)
	}
}
