package controller

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/callback"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// The suite runs the real controllers in a manager against a real kube-apiserver and etcd (envtest)
// and the ThingSpace simulator in-process.
var (
	k8s     client.Client
	logs    syncBuffer
	nsCount atomic.Int32
	// callbackURL is the manager's OAuth2 callback, registered as every test's Cloud app callback.
	callbackURL string
	// suiteConfig is the control plane's admin configuration (tests derive other users from it).
	suiteConfig *rest.Config
)

// syncBuffer collects the manager's logs for the leak test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

const (
	// stateTTL is how long an authorization URL lives in the suite.
	stateTTL = 3 * time.Second
	lifetime = 4 * time.Second
	// m2mIdle is the simulator's session idle timeout: 20 minutes compressed.
	m2mIdle = 3 * time.Second
)

// clusterNamespace is the suite manager's --cluster-resource-namespace.
const clusterNamespace = "platform"

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("..", "..", "bin", "k8s")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v (run `make envtest` to build the control plane binaries)\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	suiteConfig = cfg

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	ctrl.SetLogger(zap.New(zap.WriteTo(&logs), zap.Level(zapcore.DebugLevel)))

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   CacheOptions(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	callbacks, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	callbackURL = "http://" + callbacks.Addr().String() + callback.Path
	// A short backoff keeps failure tests fast; the maths itself is unit-tested in internal/renewal.
	if err := Setup(mgr, Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: suiteAllowedHosts, MaxConcurrentReconciles: 4, UpstreamTimeout: 5 * time.Second,
		Backoff:          renewal.Backoff{Base: 300 * time.Millisecond, Cap: 2 * time.Second, Factor: 2, Jitter: 0.2},
		CallbackListener: callbacks, StateTTL: stateTTL, ClusterResourceNamespace: clusterNamespace}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if watcher, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if code := m.Run(); code != 0 {
		return code
	}
	// After every test that ran, in any order: see leak_test.go.
	if err := leakCheck(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: leak check:", err)
		return 1
	}
	return 0
}

// fixture is one test's namespace, simulator (so upstream counts are the test's own), app key and
// credentials.
type fixture struct {
	t      *testing.T
	ns     string
	key    string
	secret string
	sim    *simulator.Server
	url    string
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, lifetime) }

// newFixtureWith gives the test's simulator a token lifetime of its own.
func newFixtureWith(t *testing.T, tokenLifetime time.Duration) *fixture {
	return newFixtureConfig(t, simulator.Config{TokenLifetime: tokenLifetime})
}

// newFixtureConfig starts the test's simulator from cfg, adding the test's app as a ThingSpace app and
// as a Cloud app whose callback is the manager's.
func newFixtureConfig(t *testing.T, cfg simulator.Config) *fixture {
	t.Helper()
	n := nsCount.Add(1)
	f := &fixture{t: t, ns: fmt.Sprintf("t%d-%s", n, strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-")))}
	if len(f.ns) > 60 {
		f.ns = f.ns[:60]
	}
	f.ns = strings.TrimRight(f.ns, "-")
	f.key, f.secret = "key-"+f.ns, fmt.Sprintf("S3cret-%d-%d", n, time.Now().UnixNano())
	cfg.Apps = map[string]string{f.key: f.secret}
	cfg.M2MIdleTimeout = m2mIdle
	f.sim = simulator.New(cfg)
	f.sim.SetCloudApp(f.key, f.secret, callbackURL)
	srv := httptest.NewServer(recordWire(f.sim))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}))
	// Runs before srv.Close: apps with revokeOnDelete still reach their simulator while they go.
	t.Cleanup(func() {
		_ = k8s.DeleteAllOf(context.Background(), &v1alpha1.M2MSession{}, client.InNamespace(f.ns))
		_ = k8s.DeleteAllOf(context.Background(), &v1alpha1.ThingSpaceApp{}, client.InNamespace(f.ns))
		_ = k8s.DeleteAllOf(context.Background(), &v1alpha1.CloudAuthorization{}, client.InNamespace(f.ns))
	})
	return f
}

func (f *fixture) credentials(name, key, secret string) {
	f.t.Helper()
	must(f.t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Data:       map[string][]byte{"key": []byte(key), "secret": []byte(secret)},
	}))
}

func (f *fixture) app(name, creds string, mutate ...func(*v1alpha1.ThingSpaceApp)) *v1alpha1.ThingSpaceApp {
	f.t.Helper()
	a := &v1alpha1.ThingSpaceApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1alpha1.ThingSpaceAppSpec{
			Endpoint:             f.url,
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: creds},
			SecretName:           name + "-token",
		},
	}
	for _, m := range mutate {
		m(a)
	}
	must(f.t, k8s.Create(context.Background(), a))
	return a
}

func (f *fixture) get(name string) *v1alpha1.ThingSpaceApp {
	f.t.Helper()
	a := &v1alpha1.ThingSpaceApp{}
	must(f.t, k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, a))
	return a
}

func (f *fixture) token(secretName string) (string, time.Time, bool) {
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: secretName}, s); err != nil {
		return "", time.Time{}, false
	}
	exp, _ := time.Parse(time.RFC3339, string(s.Data[KeyExpiresAt]))
	return string(s.Data[KeyAccessToken]), exp, true
}

// waitReady waits until the app's Ready condition has the given status and reason.
func (f *fixture) waitReady(name string, status metav1.ConditionStatus, reason string, within time.Duration) *v1alpha1.ThingSpaceApp {
	f.t.Helper()
	var last *metav1.Condition
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		a := f.get(name)
		last = meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
		if last != nil && last.Status == status && last.Reason == reason {
			return a
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("%s/%s: Ready never became %s/%s; last: %+v", f.ns, name, status, reason, last)
	return nil
}

func (f *fixture) tokenCalls() int { return f.sim.Stats().Total("POST /api/ts/v1/oauth2/token") }
func (f *fixture) revokeCalls() int {
	return f.sim.Stats().Count("POST /api/ts/v1/oauth2/revoke", 200)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
