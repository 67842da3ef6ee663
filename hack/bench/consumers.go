package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// Consumers (phase 2d): one ClusterThingSpaceApp consumed by --consumers ThingSpaceApps
// (spec.clusterAppRef) and one ClusterM2MSession consumed by --consumers M2MSessions
// (spec.clusterSessionRef), spread over --tenants namespaces as a platform's tenants would hold them:
// the even ones allowed by name, the odd ones by a label on the namespace. The cluster objects'
// credentials and Secrets live in nsPlatform, the manager's --cluster-resource-namespace.
const (
	nsPlatform        = "bench-platform"
	clusterAppName    = "bench-platform-app"
	clusterUWSName    = "bench-platform-uws"
	clusterKey        = "bench-cluster-key"
	clusterUser       = "bench-cluster-uws"
	tenantLabel       = "bench.credops.io/tenant"
	consumerLabel     = "bench.credops.io/consumer"
	consumerReadyWait = 60 * time.Second
)

func tenantNamespace(i int) string { return fmt.Sprintf("bench-tenant-%03d", i) }

func consumerAppName(i int) string     { return fmt.Sprintf("capp-%05d", i) }
func consumerSessionName(i int) string { return fmt.Sprintf("cm2m-%05d", i) }

// consumerSelector selects the consumers in every namespace.
var consumerSelector = client.MatchingLabels{consumerLabel: "true"}

// createTenants creates the platform namespace and the tenants' (the odd ones labelled).
func createTenants(ctx context.Context, c client.Client, tenants int) error {
	if err := createNamespace(ctx, c, nsPlatform); err != nil {
		return err
	}
	return parallel(ctx, tenants, 8, func(i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNamespace(i)}}
		if i%2 == 1 {
			ns.Labels = map[string]string{tenantLabel: "true"}
		}
		return create(ctx, c, ns)
	})
}

// allowedTenants allows the even tenants by name and the odd ones by label.
func allowedTenants(tenants int) *v1alpha1.AllowedNamespaces {
	a := &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{tenantLabel: "true"}}}
	for i := 0; i < tenants; i += 2 {
		a.Names = append(a.Names, tenantNamespace(i))
	}
	return a
}

// clusterReady waits until the cluster-scoped obj is Ready, reading it into obj.
func clusterReady(ctx context.Context, c client.Client, obj client.Object, conditions func() []metav1.Condition) error {
	err := harness.WaitFor(ctx, consumerReadyWait, 100*time.Millisecond, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, nil
		}
		return meta.IsStatusConditionTrue(conditions(), v1alpha1.ConditionReady), nil
	})
	if err != nil {
		return fmt.Errorf("%T %s not Ready: %w (conditions %+v)", obj, obj.GetName(), err, conditions())
	}
	return nil
}

// phase2d creates the platform's cluster objects and the tenants' consumers, waits until all are
// Ready, then counts the upstream calls (1 token request, 1 login for the whole phase) and measures a
// rotation of the ClusterThingSpaceApp and a reconcile that changes nothing on the consumers.
func phase2d(ctx context.Context, c client.WithWatch, a *apiCounter, sim *harness.Sim, mgr *harness.Manager, o options,
	clusterSecret, clusterPassword string, res *Results) error {
	n, cr := o.consumers, &res.Consumers
	cr.N, cr.Tenants = n, o.tenants
	logf("phase 2d: %d tenant namespaces; a ClusterThingSpaceApp and a ClusterM2MSession with %d consumers each", o.tenants, n)
	if err := createTenants(ctx, c, o.tenants); err != nil {
		return err
	}
	before, err := sim.Stats()
	if err != nil {
		return err
	}
	ns := func(i int) string { return tenantNamespace(i % o.tenants) }

	// The ClusterThingSpaceApp and its consumers.
	if err := apiConsumerPhase(ctx, a, res, "consumers: ClusterThingSpaceApp + consumer ThingSpaceApps, create → Ready", "thingspaceapps", n, 1, func() error {
		if err := createSecretIn(ctx, c, nsPlatform, clusterAppName+"-credentials",
			map[string]string{v1alpha1.CredentialsKeyKey: clusterKey, v1alpha1.CredentialsKeySecret: clusterSecret}); err != nil {
			return err
		}
		ca := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: clusterAppName}, Spec: v1alpha1.ClusterThingSpaceAppSpec{
			ThingSpaceAppSpec: harness.NewApp("", clusterAppName, sim.URL, clusterAppName+"-credentials", clusterAppName+"-token").Spec,
			AllowedNamespaces: allowedTenants(o.tenants)}}
		if err := create(ctx, c, ca); err != nil {
			return err
		}
		if err := clusterReady(ctx, c, ca, func() []metav1.Condition { return ca.Status.Conditions }); err != nil {
			return err
		}
		tr, err := trackIn(ctx, c, &v1alpha1.ThingSpaceAppList{}, func(o runtime.Object) (bool, string) {
			return harness.Ready(o.(*v1alpha1.ThingSpaceApp))
		}, consumerSelector)
		if err != nil {
			return err
		}
		out, err := runRollout(ctx, mgr, o, rollout{
			phase: "phase 2d", what: "consumer ThingSpaceApps", n: n, track: tr, name: consumerAppName, namespace: ns,
			create: func(i int) error {
				return create(ctx, c, &v1alpha1.ThingSpaceApp{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns(i), Name: consumerAppName(i), Labels: map[string]string{consumerLabel: "true"}},
					Spec:       v1alpha1.ThingSpaceAppSpec{ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: clusterAppName}, SecretName: consumerAppName(i) + "-token"}})
			},
		})
		if err != nil {
			return err
		}
		cr.AppsAllReady, cr.AppsReady, cr.AppsNotReady = out.allReady, out.ready, out.notReady
		res.addLatency(out.latency)
		return sleep(ctx, 3*time.Second) // stragglers
	}); err != nil {
		return err
	}

	// The ClusterM2MSession (on the ClusterThingSpaceApp) and its consumers.
	if err := apiConsumerPhase(ctx, a, res, "consumers: ClusterM2MSession + consumer M2MSessions, create → Ready", "m2msessions", n, 1, func() error {
		if err := createSecretIn(ctx, c, nsPlatform, clusterUWSName+"-credentials",
			map[string]string{v1alpha1.CredentialsKeyUsername: clusterUser, v1alpha1.CredentialsKeyPassword: clusterPassword}); err != nil {
			return err
		}
		cs := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: clusterUWSName}, Spec: v1alpha1.ClusterM2MSessionSpec{
			M2MSessionSpec: harness.NewM2MSession("", clusterUWSName, clusterAppName, clusterUWSName+"-credentials", clusterUWSName+"-session",
				o.keepAlive, benchAccount).Spec,
			AllowedNamespaces: allowedTenants(o.tenants)}}
		if err := create(ctx, c, cs); err != nil {
			return err
		}
		if err := clusterReady(ctx, c, cs, func() []metav1.Condition { return cs.Status.Conditions }); err != nil {
			return err
		}
		tr, err := trackIn(ctx, c, &v1alpha1.M2MSessionList{}, func(o runtime.Object) (bool, string) {
			return harness.SessionReady(o.(*v1alpha1.M2MSession))
		}, consumerSelector)
		if err != nil {
			return err
		}
		out, err := runRollout(ctx, mgr, o, rollout{
			phase: "phase 2d", what: "consumer M2MSessions", n: n, track: tr, name: consumerSessionName, namespace: ns,
			create: func(i int) error {
				return create(ctx, c, &v1alpha1.M2MSession{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns(i), Name: consumerSessionName(i), Labels: map[string]string{consumerLabel: "true"}},
					Spec: v1alpha1.M2MSessionSpec{ClusterSessionRef: &v1alpha1.ClusterObjectReference{Name: clusterUWSName},
						SecretName: consumerSessionName(i) + "-session"}})
			},
		})
		if err != nil {
			return err
		}
		cr.SessionsAllReady, cr.SessionsReady, cr.SessionsNotReady = out.allReady, out.ready, out.notReady
		res.addLatency(out.latency)
		return sleep(ctx, 3*time.Second)
	}); err != nil {
		return err
	}

	after, err := sim.Stats()
	if err != nil {
		return err
	}
	cr.Upstream = map[string]int{}
	for route := range after {
		if d := sum(after[route]) - sum(before[route]); d > 0 {
			cr.Upstream[route] = d
		}
	}
	cr.PeakRSSBytes, cr.RSSAfterBytes, cr.HeapAfterBytes = readMem(mgr)
	logf("phase 2d: upstream calls for the whole phase: %s; manager peak RSS %s", formatCounts(cr.Upstream), mib(cr.PeakRSSBytes))

	if err := probeConsumers(ctx, c, a, sim, o, res); err != nil {
		return err
	}
	return rotateClusterApp(ctx, c, a, sim, o, res)
}

// probeConsumers annotates up to --probe consumer ThingSpaceApps with an annotation of nobody's: a
// reconcile that must write nothing (the ClusterM2MSession's keep-alives meanwhile write its own
// status, which is not the consumers' resource).
func probeConsumers(ctx context.Context, c client.Client, a *apiCounter, sim *harness.Sim, o options, res *Results) error {
	return probeTimed(ctx, c, a, res, "consumers (ThingSpaceApps)", "thingspaceapps", min(o.probe, o.consumers), func(i int) client.Object {
		app := &v1alpha1.ThingSpaceApp{}
		app.Namespace, app.Name = tenantNamespace(i%o.tenants), consumerAppName(i)
		return app
	}, func() (int, error) {
		st, err := sim.Stats()
		return sum(st[harness.RouteM2MAccount]) + sum(st[harness.RouteM2MLogin]), err
	}, 0)
}

// rotateClusterApp asks the ClusterThingSpaceApp for a refresh and times the new token reaching every
// consumer ThingSpaceApp (its status.expiresAt moving past the old token's), counting the writes.
func rotateClusterApp(ctx context.Context, c client.WithWatch, a *apiCounter, sim *harness.Sim, o options, res *Results) error {
	cr := &res.Consumers
	ca := &v1alpha1.ClusterThingSpaceApp{}
	if err := c.Get(ctx, client.ObjectKey{Name: clusterAppName}, ca); err != nil {
		return err
	}
	if ca.Status.ExpiresAt == nil {
		return fmt.Errorf("ClusterThingSpaceApp %s has no status.expiresAt", clusterAppName)
	}
	old := ca.Status.ExpiresAt.Time
	// A new token's expiry is whole seconds: make sure it cannot equal the old one's.
	if err := sleep(ctx, time.Until(old.Add(-time.Hour+1100*time.Millisecond))); err != nil {
		return err
	}
	tr, err := trackIn(ctx, c, &v1alpha1.ThingSpaceAppList{}, func(o runtime.Object) (bool, string) {
		st := o.(*v1alpha1.ThingSpaceApp).Status
		if st.ExpiresAt != nil && st.ExpiresAt.After(old) {
			return true, ""
		}
		return false, "old token"
	}, consumerSelector)
	if err != nil {
		return err
	}
	before, err := sim.Stats()
	if err != nil {
		return err
	}
	logf("phase 2d: asking the ClusterThingSpaceApp for a refresh (a rotation reaching %d consumers)", o.consumers)
	// Each consumer M2MSession's Secret carries the app's token too: the rotation reaches them as well.
	return apiConsumerPhase(ctx, a, res, "consumers: a rotation of the ClusterThingSpaceApp (refresh-requested), every consumer of both kinds",
		"thingspaceapps,m2msessions", 2*o.consumers, 2, func() error {
			start := time.Now()
			for i := range o.consumers {
				tr.createdAt(tenantNamespace(i%o.tenants)+"/"+consumerAppName(i), start)
			}
			patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.RefreshRequestedAnnotation, "bench-"+randHex(4))
			if err := c.Patch(ctx, ca, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return err
			}
			err := harness.WaitFor(ctx, o.readyTimeout, pollInterval, func() (bool, error) {
				n, _, _ := tr.count(ctx)
				return n >= o.consumers, nil
			})
			if err != nil {
				logf("phase 2d: the rotation did not reach every consumer: %v", err)
			}
			l := tr.latency("consumer ThingSpaceApps: refresh requested → new token")
			cr.Rotation = &l
			logf("phase 2d: %s", l)
			// The consumer M2MSessions follow the ClusterM2MSession's Secret: wait until the writes stop.
			if err := a.quiet(ctx, "secrets", 3*time.Second, o.readyTimeout); err != nil {
				return err
			}
			after, err := sim.Stats()
			if err != nil {
				return err
			}
			cr.RotationUpstream = map[string]int{}
			for route := range after {
				if d := sum(after[route]) - sum(before[route]); d > 0 && route != harness.RouteM2MAccount {
					cr.RotationUpstream[route] = d
				}
			}
			logf("phase 2d: upstream calls of the rotation (keep-alives aside): %s", formatCounts(cr.RotationUpstream))
			return nil
		})
}

// createSecretIn creates the Secret ns/name with data.
func createSecretIn(ctx context.Context, c client.Client, ns, name string, data map[string]string) error {
	b := make(map[string][]byte, len(data))
	for k, v := range data {
		b[k] = []byte(v)
	}
	return create(ctx, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeOpaque, Data: b})
}

// inTenants reports whether ns is one of the benchmark's tenant namespaces.
func inTenants(ns string) bool { return strings.HasPrefix(ns, "bench-tenant-") }
