// Command manager runs the thingspace-operator controllers: it keeps Verizon ThingSpace credentials
// described by custom resources valid in Kubernetes Secrets.
package main

import (
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/inflight"
)

func main() {
	// The chart's pre-delete hook runs this image too (drain.go).
	if len(os.Args) > 1 && os.Args[1] == "drain" {
		os.Exit(drainMain(os.Args[2:]))
	}
	var (
		metricsAddr, probeAddr string
		callbackAddr           string
		stateTTL               time.Duration
		leaderNamespace        string
		clusterNamespace       string
		leaderElect, insecure  bool
		metricsSecure          bool
		watchList              string
		callbackOnly           bool
		workers                int
		upstreamTimeout        time.Duration
		lease                  leaseTimings
		allowedHosts           string
		pprofAddr              string
		shard                  shardFlags
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to authenticated clients allowed GET /metrics (the metrics-reader ClusterRole); false serves plain HTTP to anyone (local runs only).")
	flag.StringVar(&watchList, "watch-namespaces", "", "Comma-separated namespaces the manager watches and writes in (its Secret rights can then be Roles there), the --cluster-resource-namespace always among them; empty watches all.")
	flag.StringVar(&shard.selector, "watch-label-selector", "", "Label selector (e.g. shard=a) of this manager's share of the ThingSpaceApps, M2MSessions, CloudAuthorizations and cluster-scoped kinds: others are not cached nor reconciled (README \"Sharding\"); empty: all.")
	flag.StringVar(&shard.leaseID, "leader-election-id", controller.DefaultShardIdentity, "Name of the leader-election Lease, and the shard's identity in the holder registry: distinct per shard.")
	flag.StringVar(&shard.registryNamespace, "holder-registry-namespace", "", "Namespace of the holder registry, a Lease per app key held, which shards sharing a key must share: no revoke of a token another shard holds; defaults to the leader-election namespace, else the manager's own.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one of several replicas acts (on in the deployed config).")
	flag.DurationVar(&lease.duration, "leader-elect-lease-duration", 60*time.Second, "How long a non-leader replica waits before it may take over a lease the leader stopped renewing.")
	flag.DurationVar(&lease.renewDeadline, "leader-elect-renew-deadline", 40*time.Second, "How long the leader keeps retrying to renew its lease before it gives up leadership (and exits).")
	flag.DurationVar(&lease.retryPeriod, "leader-elect-retry-period", 15*time.Second, "How long leader-election clients wait between tries.")
	flag.StringVar(&leaderNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease; defaults to the pod's namespace in a cluster (required outside one).")
	flag.BoolVar(&insecure, "allow-insecure-endpoints", false, "Accept plain http:// endpoints (tests and the simulator only: credentials would cross the network in clear).")
	flag.StringVar(&allowedHosts, "allowed-endpoint-hosts", endpoints.DefaultHosts, "Comma-separated host[:port] entries: the only hosts the operator sends requests (and credentials) to, whatever a custom resource names. Exact host, case-insensitive; no port means the scheme's default port only; host:* allows every port. Others get Ready=False, reason EndpointNotAllowed.")
	flag.IntVar(&workers, "max-concurrent-reconciles", 50, "Reconciles run at once per controller (each mostly waits on the API server or a Verizon API; 10 fell 60 s behind 10,000 new ThingSpaceApps, make bench).")
	flag.DurationVar(&upstreamTimeout, "upstream-timeout", 30*time.Second, "Bound on one request to a Verizon API.")
	flag.StringVar(&callbackAddr, "oauth-callback-bind-address", ":8082", "Address the OAuth2 start and callback endpoints of CloudAuthorizations (GET /oauth2/start, /oauth2/callback) bind to; \"0\" disables them. Expose them at the Callback URL registered in Key Management.")
	flag.StringVar(&clusterNamespace, "cluster-resource-namespace", "", "Namespace of the Secrets of the cluster-scoped kinds (ClusterThingSpaceApp, ClusterM2MSession): their credentials and the Secrets they write; defaults to the manager's own namespace (POD_NAMESPACE, else the service account's).")
	flag.BoolVar(&callbackOnly, "callback-only", false, "Serve only the OAuth2 start and callback endpoints of CloudAuthorizations (no reconcilers, no leader election), with the fewer rights of config/callback-only/callback_role.yaml; run the reconcilers elsewhere with --oauth-callback-bind-address=0.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address the Go pprof endpoints (/debug/pprof/) bind to, for heap and CPU profiles; empty (the default) or \"0\" disables them. Unauthenticated: bind to localhost and port-forward.")
	flag.DurationVar(&stateTTL, "oauth-state-ttl", controller.DefaultStateTTL, "How long an authorization URL (its state) is accepted before a new one replaces it.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(newLogger(opts, os.Stderr))
	log := ctrl.Log.WithName("setup")
	if callbackOnly {
		// Every replica must answer the browsers it gets; there is nothing to lead.
		leaderElect = false
	}
	if err := lease.validate(); leaderElect && err != nil {
		log.Error(err, "Invalid leader-election timings")
		os.Exit(2)
	}
	allowed, err := endpoints.Parse(allowedHosts)
	if err != nil {
		log.Error(err, "Invalid --allowed-endpoint-hosts")
		os.Exit(2)
	}

	clusterNamespace = defaultClusterResourceNamespace(clusterNamespace)
	if clusterNamespace == "" {
		log.Info("No --cluster-resource-namespace and not in a cluster: the cluster-scoped kinds stay not Ready")
	}
	// The cluster-scoped kinds' Secrets live in clusterNamespace: a list of namespaces includes it.
	watched, err := watchNamespaces(watchList, clusterNamespace)
	if err != nil {
		log.Error(err, "Invalid --watch-namespaces")
		os.Exit(2)
	}

	shardOpts, err := shard.shardOptions(leaderNamespace, clusterNamespace)
	if err != nil {
		log.Error(err, "Invalid sharding flags")
		os.Exit(2)
	}
	if callbackOnly {
		// The callback answers for every shard's CloudAuthorizations (README "Sharding").
		shardOpts.LabelSelector = labels.Everything()
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOptions(metricsAddr, metricsSecure),
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              shardOpts.Identity,
		LeaderElectionNamespace:       leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &lease.duration,
		RenewDeadline:                 &lease.renewDeadline,
		RetryPeriod:                   &lease.retryPeriod,
		Cache:                         controller.ShardCacheOptions(watched, shardOpts.LabelSelector),
		// On SIGTERM a refresh already sent must get its answer stored: a rotated refresh token that is
		// not stored is lost, and the grant with it. Reconciles are given the upstream timeout and more.
		GracefulShutdownTimeout: ptr.To(max(30*time.Second, upstreamTimeout+15*time.Second)),
		// controller-runtime v0.24's priority queue can deadlock on shutdown (controller-runtime#3538,
		// fixed in v0.25), which would hold a refresh's answer hostage; the classic queue is enough here.
		Controller: config.Controller{UsePriorityQueue: ptr.To(false)},
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}

	// Persist-critical upstream calls register here; main waits for them after the manager stops.
	tracker := &inflight.Tracker{}
	setup := controller.Setup
	if callbackOnly {
		setup = controller.SetupCallbackOnly
	}
	if err := setup(mgr, controller.Options{
		AllowInsecureEndpoints:   insecure,
		AllowedEndpointHosts:     allowed,
		MaxConcurrentReconciles:  workers,
		UpstreamTimeout:          upstreamTimeout,
		CallbackBindAddress:      callbackAddr,
		StateTTL:                 stateTTL,
		InFlight:                 tracker,
		WatchNamespaces:          watched,
		ClusterResourceNamespace: clusterNamespace,
		Shard:                    shardOpts,
	}); err != nil {
		log.Error(err, "Unable to set up the controllers")
		os.Exit(1)
	}

	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	log.Info("Starting the manager", "leaderElection", leaderElect, "allowInsecureEndpoints", insecure, "allowedEndpointHosts", allowed.String(),
		"oauthCallback", callbackAddr, "metricsSecure", metricsSecure, "watchNamespaces", watched, "callbackOnly", callbackOnly,
		"watchLabelSelector", shardOpts.LabelSelector.String(), "leaderElectionID", shardOpts.Identity, "holderRegistryNamespace", shardOpts.RegistryNamespace)
	if err := runAndDrain(ctrl.SetupSignalHandler(), mgr.Start, tracker, upstreamTimeout+15*time.Second, log); err != nil {
		os.Exit(1)
	}
}
