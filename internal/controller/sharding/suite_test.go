package sharding

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/test/harness"
)

var (
	cfg    *rest.Config
	scheme *runtime.Scheme
	k8s    client.Client
	logs   harness.LogBuffer
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	cp, err := harness.StartControlPlane(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	cfg, scheme, k8s = cp.Config, cp.Scheme, cp.Client
	ctrl.SetLogger(zap.New(zap.WriteTo(&logs), zap.UseDevMode(true)))
	return m.Run()
}

// shard is one manager of the fleet, and the writes it sent to the API server.
type shard struct {
	name string
	mu   sync.Mutex
	// writes are "METHOD path" of every request but GET, LIST and WATCH.
	writes []string
}

func (s *shard) Writes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// startShard runs a manager for the objects labelled shard=<name>, leader-elected under a Lease of its
// own, its cluster kinds' Secrets in clusterNS and its holder registry in registryNS ("" : none).
func startShard(t *testing.T, name, clusterNS, registryNS string) *shard {
	t.Helper()
	s := &shard{name: name}
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet {
				s.mu.Lock()
				s.writes = append(s.writes, r.Method+" "+r.URL.Path)
				s.mu.Unlock()
			}
			return rt.RoundTrip(r)
		})
	}
	sel := labels.SelectorFromSet(labels.Set{"shard": name})
	id := "shard-" + name + ".thingspace-operator.credops.io"
	mgr, err := ctrl.NewManager(c, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: controller.ShardCacheOptions(nil, sel),
		LeaderElection: true, LeaderElectionID: id, LeaderElectionNamespace: clusterNS, LeaderElectionReleaseOnCancel: true})
	must(t, err)
	must(t, controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"),
		MaxConcurrentReconciles: 2, UpstreamTimeout: 5 * time.Second, SkipNameValidation: true, ClusterResourceNamespace: clusterNS,
		Shard: controller.ShardOptions{LabelSelector: sel, RegistryNamespace: registryNS, Identity: id, RenewEvery: time.Second}}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// namespace creates a namespace, deleted when the test ends.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	must(t, k8s.Create(context.Background(), ns))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return name
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func inShard(name string) map[string]string { return map[string]string{"shard": name} }

func conditions(o client.Object) []metav1.Condition {
	switch x := o.(type) {
	case *v1alpha1.ThingSpaceApp:
		return x.Status.Conditions
	case *v1alpha1.M2MSession:
		return x.Status.Conditions
	case *v1alpha1.ClusterThingSpaceApp:
		return x.Status.Conditions
	}
	return nil
}

// waitReady waits for o's Ready condition to have status and reason, and returns it.
func waitReady(t *testing.T, o client.Object, key client.ObjectKey, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := k8s.Get(context.Background(), key, o); err == nil {
			if c := meta.FindStatusCondition(conditions(o), v1alpha1.ConditionReady); c != nil && c.Status == status && c.Reason == reason {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%T %s: Ready never %s/%s: %v\nlog tail: %s", o, key, status, reason, conditions(o), tail(logs.String(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// touching returns the writes whose path names one of the objects in names (a path segment).
func touching(writes []string, names ...string) []string {
	var out []string
	for _, w := range writes {
		for _, n := range names {
			if strings.Contains(w+"/", "/"+n+"/") {
				out = append(out, w)
			}
		}
	}
	return out
}
