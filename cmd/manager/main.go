// Command manager runs the thingspace-operator controllers: it keeps Verizon ThingSpace credentials
// described by custom resources valid in Kubernetes Secrets.
package main

import (
	"flag"
	"math/rand/v2"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

func main() {
	var (
		metricsAddr, probeAddr string
		leaderElect, insecure  bool
		workers                int
		upstreamTimeout        time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one of several replicas acts (on in the deployed config).")
	flag.BoolVar(&insecure, "allow-insecure-endpoints", false, "Accept plain http:// endpoints (tests and the simulator only: credentials would cross the network in clear).")
	flag.IntVar(&workers, "max-concurrent-reconciles", 10, "Reconciles run at once per controller.")
	flag.DurationVar(&upstreamTimeout, "upstream-timeout", 30*time.Second, "Bound on one request to a Verizon API.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "thingspace-operator.credops.io",
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			// Only the Secrets the operator writes are cached in full; the rest of the cluster's Secrets
			// cost nothing here (credentials Secrets are watched through a metadata-only cache).
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue})},
			},
			DefaultTransform: cache.TransformStripManagedFields(),
		},
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}

	secretMeta, err := controller.NewSecretMetaCache(mgr)
	if err != nil {
		log.Error(err, "Unable to create the Secret metadata cache")
		os.Exit(1)
	}
	utilruntime.Must(mgr.Add(secretMeta))

	clk := clock.RealClock{}
	endpoints := &controller.Endpoints{HTTP: upstream.NewHTTPClients(upstreamTimeout), Clock: clk, AllowInsecure: insecure, RequestTimeout: upstreamTimeout}
	writer := &secrets.Writer{Client: mgr.GetClient(), Meta: secretMeta, Reader: mgr.GetAPIReader(), Scheme: scheme}
	wiring := controller.Wiring{SecretMeta: secretMeta, MaxConcurrentReconciles: workers}

	appEvents := make(chan event.TypedGenericEvent[*v1alpha1.ThingSpaceApp], 1024)
	apps := &controller.ThingSpaceAppReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    scheme,
		Recorder:  mgr.GetEventRecorder("thingspace-operator"),
		Clock:     clk,
		Rand:      rand.Float64,
		Broker:    tokenbroker.New(clk, controller.Notifier(appEvents)),
		Secrets:   writer,
		Endpoints: endpoints,
		Backoff:   renewal.DefaultBackoff,
	}
	if err := apps.SetupWithManager(mgr, wiring, appEvents); err != nil {
		log.Error(err, "Unable to set up the controller", "controller", "ThingSpaceApp")
		os.Exit(1)
	}

	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	log.Info("Starting the manager", "leaderElection", leaderElect, "allowInsecureEndpoints", insecure)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
}
