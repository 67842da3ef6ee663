package failover

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/test/harness"
)

var plane *harness.ControlPlane

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	os.Exit(harness.RunSuite(m, &plane))
}

// request is one request the manager sent: when, and "METHOD path?query".
type request struct {
	at   time.Time
	what string
}

type recorder struct {
	mu   sync.Mutex
	reqs []request
}

func (r *recorder) RoundTrip(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		r.mu.Lock()
		r.reqs = append(r.reqs, request{at: time.Now(), what: req.Method + " " + req.URL.Path + "?" + req.URL.RawQuery})
		r.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

// secretReads are the lists and watches of Secrets (an informer's list is a watch that sends the
// initial events) sent before (or after) t.
func (r *recorder) secretReads(before bool, t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.reqs {
		path, _, _ := strings.Cut(q.what, "?")
		if path == "GET /api/v1/secrets" || strings.HasPrefix(path, "GET /api/v1/namespaces/") && strings.HasSuffix(path, "/secrets") {
			if q.at.Before(t) == before {
				out = append(out, q.what)
			}
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A standby replica starts the controllers' sources before it leads (controller.Options.EnableWarmup):
// its Secret informers have listed and synced, and its queues hold every object, while it reconciles
// nothing; on winning the lease it reconciles at once, from those caches, with no List of Secrets in
// front of its first pass (chaos suite, issue 14: a new leader's first upstream call came 0.1-0.3 s
// after it led, the token of an app that died across the failover dead that much longer).
func TestStandbyWarmsItsCachesBeforeItLeads(t *testing.T) {
	ctx := context.Background()
	c := plane.Client
	const ns, id = "default", "warmup.thingspace-operator.credops.io"
	// Another holder keeps the lease: the manager stays standby until the test deletes it.
	held := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: id}, Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To("another-replica"), LeaseDurationSeconds: ptr.To(int32(3600)),
		AcquireTime: &metav1.MicroTime{Time: time.Now()}, RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	if err := c.Create(ctx, held); err != nil {
		t.Fatal(err)
	}
	app := harness.NewApp(ns, "warm", "http://127.0.0.1:1", "warm-creds", "warm-token")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	cfg := rest.CopyConfig(plane.Config)
	cfg.WrapTransport = rec.RoundTrip
	lease, renew, retry := 2*time.Second, time.Second, 100*time.Millisecond
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: plane.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: controller.CacheOptions(), LeaderElection: true, LeaderElectionID: id,
		LeaderElectionNamespace: ns, LeaderElectionReleaseOnCancel: true, LeaseDuration: &lease, RenewDeadline: &renew, RetryPeriod: &retry})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var passes []time.Time
	if err := controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"),
		MaxConcurrentReconciles: 2, UpstreamTimeout: 2 * time.Second, SkipNameValidation: true, ClusterResourceNamespace: ns,
		OnReconciled: func(name string, req reconcile.Request, _ reconcile.Result, _ error) {
			if strings.HasSuffix(name, "ThingSpaceAppReconciler") && req.Name == app.Name {
				mu.Lock()
				passes = append(passes, time.Now())
				mu.Unlock()
			}
		}}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Standby: both Secret informers (managed Secrets in full, every Secret's metadata) list and watch.
	if err := harness.WaitFor(ctx, 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		return len(rec.secretReads(true, time.Now())) >= 2, nil
	}); err != nil {
		t.Fatalf("a standby read the Secrets with %v, want both informers' lists before it leads", rec.secretReads(true, time.Now()))
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	early := len(passes)
	mu.Unlock()
	select {
	case <-mgr.Elected():
		t.Fatal("elected while another holder keeps the lease")
	default:
	}
	if early != 0 {
		t.Fatalf("a standby reconciled the app %d times", early)
	}

	if err := c.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mgr.Elected():
	case <-time.After(20 * time.Second):
		t.Fatal("never elected")
	}
	elected := time.Now()
	if err := harness.WaitFor(ctx, 20*time.Second, 20*time.Millisecond, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(passes) > 0, nil
	}); err != nil {
		t.Fatal("the new leader never reconciled the app")
	}
	if after := rec.secretReads(false, elected); len(after) > 0 {
		t.Errorf("the new leader listed Secrets after it led: %v", after)
	}
}
