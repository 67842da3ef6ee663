package capture

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/callback"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/test/harness"
)

const (
	uwsUser, otherUser = "fleet-uws", "other-uws"
	uwsPassword        = "Str0ng!Passw0rd"
	m2mAppName         = "m2m-app"
	clusterAppName     = "platform-app"
)

// env is a control plane, the real controllers in a manager, and a simulator they talk to.
type env struct {
	cp                  *harness.ControlPlane
	sim                 *simulator.Server
	simURL, callbackURL string
	ns                  string
	appKey, appSecret   string
}

// cp is the suite's control plane.
var cp *harness.ControlPlane

func TestMain(m *testing.M) { os.Exit(harness.RunSuite(m, &cp)) }

// start brings the controllers and a simulator up for the test and tears them down at its end.
func start(t *testing.T) *env {
	t.Helper()
	e := &env{cp: cp, ns: "fleet", appKey: "fleet-app-key", appSecret: "S3cret-" + time.Now().Format("150405.000000")}

	callbacks, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	e.callbackURL = "http://" + callbacks.Addr().String() + callback.Path
	e.sim = simulator.New(simulator.Config{Apps: map[string]string{e.appKey: e.appSecret},
		M2MUsers: map[string]string{uwsUser: uwsPassword, otherUser: uwsPassword}})
	e.sim.SetCloudApp(e.appKey, e.appSecret, e.callbackURL)
	srv := httptest.NewServer(e.sim)
	t.Cleanup(srv.Close)
	e.simURL = srv.URL

	ctrl.SetLogger(logr.Discard())
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Scheme: cp.Scheme, Cache: controller.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	must(t, err)
	must(t, controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), UpstreamTimeout: 5 * time.Second,
		CallbackListener: callbacks, SkipNameValidation: true, ClusterResourceNamespace: e.ns}))
	mctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	// Registered after srv.Close, so it runs first: the objects go while their upstream is still there.
	t.Cleanup(func() {
		for _, o := range []client.Object{&v1alpha1.M2MSession{}, &v1alpha1.ThingSpaceApp{}, &v1alpha1.CloudAuthorization{}} {
			_ = cp.Client.DeleteAllOf(context.Background(), o, client.InNamespace(e.ns))
		}
		for _, o := range []client.Object{&v1alpha1.ClusterM2MSession{}, &v1alpha1.ClusterThingSpaceApp{}} {
			_ = cp.Client.DeleteAllOf(context.Background(), o)
		}
		stop()
		<-done
	})
	must(t, cp.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}))
	return e
}

func (e *env) secret(t *testing.T, name string, data map[string]string) {
	t.Helper()
	must(t, e.cp.Client.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, StringData: data}))
}

// app creates a ThingSpaceApp whose credentials carry secret.
func (e *env) app(t *testing.T, name, secret string) *v1alpha1.ThingSpaceApp {
	t.Helper()
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyKey: e.appKey, v1alpha1.CredentialsKeySecret: secret})
	app := harness.NewApp(e.ns, name, e.simURL, name+"-credentials", name+"-token")
	must(t, e.cp.Client.Create(context.Background(), app))
	return app
}

// session creates an M2MSession logging in with password, on a shared ThingSpaceApp. The refused
// password is another username's, so the lockout count of one never holds back the other.
func (e *env) session(t *testing.T, name, password string) *v1alpha1.M2MSession {
	t.Helper()
	app := &v1alpha1.ThingSpaceApp{}
	if err := e.cp.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: m2mAppName}, app); err != nil {
		e.app(t, m2mAppName, e.appSecret)
	}
	user := uwsUser
	if password != uwsPassword {
		user = otherUser
	}
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyUsername: user, v1alpha1.CredentialsKeyPassword: password})
	s := harness.NewM2MSession(e.ns, name, m2mAppName, name+"-credentials", name+"-session", 0, "")
	must(t, e.cp.Client.Create(context.Background(), s))
	return s
}

// clusterSession creates a ClusterM2MSession allowing allowed, on a shared ClusterThingSpaceApp, with
// its credentials in the namespace (the manager's cluster resource namespace), and a consumer of it in
// the namespace.
func (e *env) clusterSession(t *testing.T, name, consumer string, allowed *v1alpha1.AllowedNamespaces) *v1alpha1.ClusterM2MSession {
	t.Helper()
	ctx := context.Background()
	if err := e.cp.Client.Get(ctx, client.ObjectKey{Name: clusterAppName}, &v1alpha1.ClusterThingSpaceApp{}); err != nil {
		e.secret(t, clusterAppName+"-credentials", map[string]string{v1alpha1.CredentialsKeyKey: e.appKey, v1alpha1.CredentialsKeySecret: e.appSecret})
		must(t, e.cp.Client.Create(ctx, &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: clusterAppName},
			Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: harness.NewApp("", clusterAppName, e.simURL, clusterAppName+"-credentials", clusterAppName+"-token").Spec}}))
	}
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword})
	cm := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterM2MSessionSpec{AllowedNamespaces: allowed,
		M2MSessionSpec: harness.NewM2MSession("", name, clusterAppName, name+"-credentials", name+"-session", 0, "").Spec}}
	must(t, e.cp.Client.Create(ctx, cm))
	must(t, e.cp.Client.Create(ctx, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: consumer},
		Spec: v1alpha1.M2MSessionSpec{ClusterSessionRef: &v1alpha1.ClusterObjectReference{Name: name}, SecretName: consumer + "-session"}}))
	return cm
}

// clusterApp creates a ClusterThingSpaceApp allowing allowed, with its credentials in the namespace (the
// manager's cluster resource namespace), and a consumer of it in the namespace.
func (e *env) clusterApp(t *testing.T, name, consumer string, allowed *v1alpha1.AllowedNamespaces) *v1alpha1.ClusterThingSpaceApp {
	t.Helper()
	ctx := context.Background()
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyKey: e.appKey, v1alpha1.CredentialsKeySecret: e.appSecret})
	c := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterThingSpaceAppSpec{AllowedNamespaces: allowed,
		ThingSpaceAppSpec: harness.NewApp("", name, e.simURL, name+"-credentials", name+"-token").Spec}}
	must(t, e.cp.Client.Create(ctx, c))
	must(t, e.cp.Client.Create(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: consumer},
		Spec: v1alpha1.ThingSpaceAppSpec{ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: name}, SecretName: consumer + "-token"}}))
	return c
}

// servingOne waits until the consumer and c are Ready and c counts it, and returns c as stored.
func (e *env) servingOne(t *testing.T, c *v1alpha1.ClusterThingSpaceApp, consumer string) *v1alpha1.ClusterThingSpaceApp {
	t.Helper()
	e.waitCond(t, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: consumer}},
		v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	must(t, harness.WaitFor(context.Background(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		err := e.cp.Client.Get(context.Background(), client.ObjectKeyFromObject(c), c)
		return err == nil && c.Status.Consumers == 1 && meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionReady), err
	}))
	return c
}

// cloud creates a CloudAuthorization for the simulator's Cloud app.
func (e *env) cloud(t *testing.T, name string) *v1alpha1.CloudAuthorization {
	t.Helper()
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyKey: e.appKey, v1alpha1.CredentialsKeySecret: e.appSecret})
	ca := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.CloudAuthorizationSpec{Endpoint: e.simURL + "/cloud/1", CallbackURL: e.callbackURL,
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: name + "-credentials"}, SecretName: name + "-tokens"},
	}
	must(t, e.cp.Client.Create(context.Background(), ca))
	return ca
}
