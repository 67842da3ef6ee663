package gitops

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
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
	appKey, appSecret  = "gitops-app-key", "S3cret-gitops-app"
	uwsUser, otherUser = "gitops-uws", "other-uws"
	uwsPassword        = "Str0ng!Passw0rd"
)

// cp is the suite's control plane, shared by every test (each works in a namespace of its own).
var cp *harness.ControlPlane

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(harness.RunSuite(m, &cp))
}

// env is one test's namespace, a simulator, and the operator, which the test may stop and start again
// (to see an object the operator has not acted on yet).
type env struct {
	ns string
	// others are more namespaces the operator watches; the first is its --cluster-resource-namespace.
	others              []string
	sim                 *simulator.Server
	simURL, callbackURL string
	callbackAddr        string
	stop                func()
}

func newEnv(t *testing.T, ns string, more ...string) *env {
	t.Helper()
	e := &env{ns: ns, others: more}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	e.callbackAddr = l.Addr().String()
	must(t, l.Close())
	e.callbackURL = "http://" + e.callbackAddr + callback.Path
	e.sim = simulator.New(simulator.Config{Apps: map[string]string{appKey: appSecret}, M2MUsers: map[string]string{uwsUser: uwsPassword, otherUser: uwsPassword}})
	e.sim.SetCloudApp(appKey, appSecret, e.callbackURL)
	srv := httptest.NewServer(e.sim)
	t.Cleanup(srv.Close)
	e.simURL = srv.URL
	for _, n := range e.namespaces() {
		must(t, cp.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}))
	}
	// Registered after srv.Close, so it runs first: the objects go while their upstream is still there.
	t.Cleanup(func() {
		if e.stop == nil {
			e.start(t)
		}
		for _, n := range e.namespaces() {
			for _, o := range []client.Object{&v1alpha1.M2MSession{}, &v1alpha1.ThingSpaceApp{}, &v1alpha1.CloudAuthorization{}} {
				_ = cp.Client.DeleteAllOf(context.Background(), o, client.InNamespace(n))
			}
		}
		if e.platform() != "" {
			_ = cp.Client.DeleteAllOf(context.Background(), &v1alpha1.ClusterM2MSession{})
			_ = harness.WaitFor(context.Background(), 20*time.Second, 100*time.Millisecond, func() (bool, error) {
				l := &v1alpha1.ClusterM2MSessionList{}
				err := cp.Client.List(context.Background(), l)
				return err == nil && len(l.Items) == 0, nil
			})
			_ = cp.Client.DeleteAllOf(context.Background(), &v1alpha1.ClusterThingSpaceApp{})
		}
		_ = harness.WaitFor(context.Background(), 20*time.Second, 100*time.Millisecond, func() (bool, error) {
			l := &v1alpha1.M2MSessionList{}
			err := cp.Client.List(context.Background(), l, client.InNamespace(ns))
			return err == nil && len(l.Items) == 0, nil
		})
		e.halt()
	})
	e.start(t)
	return e
}

// platform is the cluster resource namespace ("": none).
func (e *env) platform() string {
	if len(e.others) == 0 {
		return ""
	}
	return e.others[0]
}

// namespaces are the namespaces the test's operator watches.
func (e *env) namespaces() []string { return append([]string{e.ns}, e.others...) }

// start runs the operator (the real controllers in a manager, watching the test's namespaces).
func (e *env) start(t *testing.T) {
	t.Helper()
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Scheme: cp.Scheme, Cache: controller.CacheOptionsFor(e.namespaces()),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	must(t, err)
	// The callback listens on the same address every time: a consent link issued before stays valid.
	callbacks, err := net.Listen("tcp", e.callbackAddr)
	must(t, err)
	must(t, controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), UpstreamTimeout: 5 * time.Second,
		CallbackListener: callbacks, SkipNameValidation: true, WatchNamespaces: e.namespaces(), ClusterResourceNamespace: e.platform()}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	e.stop = func() { cancel(); <-done }
}

// halt stops the operator.
func (e *env) halt() {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
}

func (e *env) secret(t *testing.T, name string, data map[string]string) {
	t.Helper()
	must(t, cp.Client.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, StringData: data}))
}

// app creates a ThingSpaceApp whose credentials carry secret ("" creates no credentials Secret).
func (e *env) app(t *testing.T, name, secret string) *v1alpha1.ThingSpaceApp {
	t.Helper()
	if secret != "" {
		e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyKey: appKey, v1alpha1.CredentialsKeySecret: secret})
	}
	app := harness.NewApp(e.ns, name, e.simURL, name+"-credentials", name+"-token")
	must(t, cp.Client.Create(context.Background(), app))
	return app
}

// session creates an M2MSession on app, logging in as user with password.
func (e *env) session(t *testing.T, name, app, user, password string) *v1alpha1.M2MSession {
	t.Helper()
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyUsername: user, v1alpha1.CredentialsKeyPassword: password})
	s := harness.NewM2MSession(e.ns, name, app, name+"-credentials", name+"-session", 0, "")
	must(t, cp.Client.Create(context.Background(), s))
	return s
}

// cloud creates a CloudAuthorization for the simulator's Cloud app.
func (e *env) cloud(t *testing.T, name string) *v1alpha1.CloudAuthorization {
	t.Helper()
	e.secret(t, name+"-credentials", map[string]string{v1alpha1.CredentialsKeyKey: appKey, v1alpha1.CredentialsKeySecret: appSecret})
	ca := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.CloudAuthorizationSpec{Endpoint: e.simURL + "/cloud/1", CallbackURL: e.callbackURL,
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: name + "-credentials"}, SecretName: name + "-tokens"},
	}
	must(t, cp.Client.Create(context.Background(), ca))
	return ca
}

// consent plays the browser on the CloudAuthorization's live consent link (in its consent Secret):
// the start endpoint sets its cookie and redirects to the simulator's authorize page, which redirects
// to the manager's callback.
func (e *env) consent(t *testing.T, name string) {
	t.Helper()
	var link string
	must(t, harness.WaitFor(context.Background(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		var err error
		link, err = harness.ConsentLink(context.Background(), cp.Client, client.ObjectKey{Namespace: e.ns, Name: name})
		return err == nil && link != "", err
	}))
	c, err := harness.NewBrowser().Consent(context.Background(), link)
	if err != nil {
		t.Fatalf("consent: %v", err) // never quotes a URL: the callback's holds a code
	}
	if c.Page.Status != http.StatusOK {
		t.Fatalf("the callback answered %d", c.Page.Status)
	}
}

// live reads kind/name as the API server holds it, unstructured: what Flux's status poller reads. name
// is in the test's namespace unless written namespace/name; a Cluster* kind has none.
func (e *env) live(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	key := client.ObjectKey{Namespace: e.ns, Name: name}
	if ns, n, ok := strings.Cut(name, "/"); ok {
		key = client.ObjectKey{Namespace: ns, Name: n}
	}
	if strings.HasPrefix(kind, "Cluster") {
		key.Namespace = ""
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	must(t, cp.Client.Get(context.Background(), key, u))
	return u
}

// compute is kstatus's verdict on the live object.
func (e *env) compute(t *testing.T, kind, name string) (*status.Result, *unstructured.Unstructured) {
	t.Helper()
	u := e.live(t, kind, name)
	res, err := status.Compute(u)
	must(t, err)
	return res, u
}

// waitStatus waits until kstatus says want for kind/name and returns the object then read.
func (e *env) waitStatus(t *testing.T, kind, name string, want status.Status) (*status.Result, *unstructured.Unstructured) {
	t.Helper()
	var res *status.Result
	var u *unstructured.Unstructured
	err := harness.WaitFor(context.Background(), 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		res, u = e.compute(t, kind, name)
		return res.Status == want, nil
	})
	if err != nil {
		t.Fatalf("%s %s: kstatus never said %s (last %s: %q; conditions %v)", kind, name, want, res.Status, res.Message, conditionsOf(u))
	}
	return res, u
}

// conditionsOf summarises an object's conditions as type=status/reason.
func conditionsOf(u *unstructured.Unstructured) []string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var out []string
	for _, c := range conds {
		m, _ := c.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v/%v", m["type"], m["status"], m["reason"]))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fixSecret sets key of the Secret name to value.
func fixSecret(t *testing.T, e *env, name, key, value string) {
	t.Helper()
	s := &corev1.Secret{}
	must(t, cp.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, s))
	orig := s.DeepCopy()
	s.Data[key] = []byte(value)
	must(t, cp.Client.Patch(context.Background(), s, client.MergeFrom(orig)))
}
