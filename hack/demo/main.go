// Command demo shows thingspace-operator at work on a fresh machine, with nothing but Go: it starts a
// local Kubernetes control plane (envtest's kube-apiserver and etcd from KUBEBUILDER_ASSETS, else
// bin/k8s), the ThingSpace simulator with a compressed token lifetime and the manager, applies the
// samples from config/samples, and narrates what happens: the token Secret being written, each rotation
// when the token expires, and a manual refresh through the thingspace.credops.io/refresh-requested
// annotation; for the M2MSession, the UWS login, the keep-alives that hold the one session, and the
// session Secret's access_token following every change of the app's token; and for the
// CloudAuthorization, the authorization URL, a person (played by the demo) who declines once
// (AccessDenied, a new URL) and then consents, the page the manager's callback answers, the Secret it
// writes, and each refresh at about two thirds of the access token's life with its Refreshed event.
//
//	make demo                                   # until Ctrl-C
//	make demo DEMO_ARGS=--duration=60s          # stop by itself (a smoke test)
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go run ./hack/demo [flags]
//
// The samples are read as they are: the app's credentials Secret gets the simulator's demo app key and
// secret (demo-key / demo-secret), the ThingSpaceApp the simulator's URL as its endpoint, the UWS
// credentials Secret the simulator's demo UWS user (demo-uws) and the M2MSession a keep-alive interval
// of --keepalive-interval instead of 10m (the simulator ends sessions idle for --m2m-idle-timeout
// instead of 20m), the Cloud app's credentials Secret the simulator's demo Verizon Cloud app
// (demo-cloud-key, registered with the manager's callback URL) and the CloudAuthorization the
// simulator's Cloud API as its endpoint and that callback URL; then all are created in the namespace
// --namespace with the Go client (kubectl is not needed). Cloud access tokens live --token-lifetime too.
// Tokens and session tokens are only ever shown as a short SHA-256 fingerprint (and a length), codes
// and passwords not at all.
//
// While the demo runs, bin/demo.kubeconfig points at its API server, for kubectl if it is installed;
// the file is removed on exit. The binaries and the logs of the manager and the simulator are in
// bin/demo/.
//
// With --duration the narrative stops after that long (counted from when the samples are applied) and
// the demo exits non-zero when a step that fits in that time did not happen: the first token, and with
// enough time an automatic rotation and the manual refresh; for the M2MSession the login, and with
// enough time a keep-alive and the session Secret following an app token rotation; for the
// CloudAuthorization AccessDenied and the consent's tokens, and with enough time a refresh ahead of
// expiry with its Refreshed event.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/credops/thingspace-operator/hack/internal/cloud"
	"github.com/credops/thingspace-operator/hack/internal/interrupt"
	"github.com/credops/thingspace-operator/test/harness"
)

// The simulator's demo app (as in config/sim and `make sim`).
const (
	demoKey    = "demo-key"
	demoSecret = "demo-secret"
)

// The simulator's demo Verizon Cloud app (client id and secret).
const (
	demoCloudKey    = "demo-cloud-key"
	demoCloudSecret = "demo-cloud-secret"
)

// The simulator's demo UWS user. The password meets the UWS rules (upper, lower, digit, symbol).
const (
	demoUWSUser     = "demo-uws"
	demoUWSPassword = "Dem0-Uws!Pass"
)

const (
	pollInterval = 250 * time.Millisecond
	// manualDelay is how long after the first rotation the manual refresh is asked for.
	manualDelay = 3 * time.Second
)

type options struct {
	lifetime   time.Duration
	keepAlive  time.Duration
	m2mIdle    time.Duration
	duration   time.Duration
	namespace  string
	kubeconfig string
	samples    string
}

func main() {
	var o options
	flag.DurationVar(&o.lifetime, "token-lifetime", 20*time.Second, "lifetime of the simulator's tokens and Verizon Cloud access tokens (both 1h upstream)")
	flag.DurationVar(&o.keepAlive, "keepalive-interval", 10*time.Second, "keepAlive.interval given to the sample M2MSession (the sample says 10m)")
	flag.DurationVar(&o.m2mIdle, "m2m-idle-timeout", 30*time.Second, "the simulator's M2M session idle timeout (ThingSpace's is 20m)")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long, counted from when the samples are applied (0: run until Ctrl-C)")
	flag.StringVar(&o.namespace, "namespace", "demo", "namespace to apply the samples to")
	flag.StringVar(&o.kubeconfig, "kubeconfig-out", "bin/demo.kubeconfig", "where to write a kubeconfig for the demo's API server (relative to the repository root)")
	flag.StringVar(&o.samples, "samples", "config/samples", "directory of sample manifests (relative to the repository root)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: demo [flags]\n\nRun the operator locally against the ThingSpace simulator and narrate what it does.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || o.lifetime < time.Second || o.duration < 0 || o.namespace == "" ||
		o.keepAlive <= 0 || o.keepAlive >= 20*time.Minute || o.m2mIdle <= o.keepAlive {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go interrupt.CancelOnSignals(cancel, nil, func() {
		say("Still stopping; Ctrl-C once more exits at once and may leave kube-apiserver and etcd running.")
	})

	if err := run(ctx, o); err != nil {
		if ctx.Err() != nil {
			say("Interrupted during start-up; everything that had started was stopped.")
			return
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "bin", "demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	say("Starting a local control plane (kube-apiserver, etcd) and building the manager and the simulator…")
	cp, mgrBin, simBin, err := harness.StartWithBinaries(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping the control plane.")
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping the control plane:", err)
		}
	}()
	say("Control plane up: %s", cp.Config.Host)

	simLog := filepath.Join(dir, "sim.log")
	mgrLog := filepath.Join(dir, "manager.log")
	for _, p := range []string{simLog, mgrLog} {
		_ = os.Remove(p) // logs of this run only
	}
	// The simulator's Verizon Cloud app is registered with the manager's callback URL: its port is
	// chosen before either starts.
	callbackAddr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	callbackURL := "http://" + callbackAddr + harness.CallbackPath
	sim, err := harness.SimConfig{
		Binary: simBin,
		Args: []string{"--app", demoKey + ":" + demoSecret, "--token-lifetime", o.lifetime.String(),
			"--m2m-user", demoUWSUser + ":" + demoUWSPassword, "--m2m-idle-timeout", o.m2mIdle.String()},
		CloudApps:                map[string]harness.CloudApp{demoCloudKey: {Secret: demoCloudSecret, CallbackURL: callbackURL}},
		CloudAccessTokenLifetime: o.lifetime,
		LogPath:                  simLog,
	}.Start(ctx)
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping the simulator.")
		_ = sim.Stop()
	}()
	say("ThingSpace simulator up: %s (app key %s, tokens live %s; ThingSpace's live 1h)", sim.URL, demoKey, o.lifetime)
	indent("UWS user %s (password hidden); sessions idle out after %s (ThingSpace: 20m)", demoUWSUser, o.m2mIdle)
	indent("Verizon Cloud app %s (secret hidden), Callback URL %s; access tokens live %s (Verizon's: about 1h)",
		demoCloudKey, callbackURL, o.lifetime)

	// The manager reads the kubeconfig written for the user (removed after everything has stopped).
	kubeconfig := o.kubeconfig
	if !filepath.IsAbs(kubeconfig) {
		kubeconfig = filepath.Join(root, kubeconfig)
	}
	if err := writeKubeconfig(cp.KubeconfigPath, kubeconfig); err != nil {
		return err
	}
	defer func() { _ = os.Remove(kubeconfig) }()

	mgr, err := harness.ManagerConfig{Binary: mgrBin, Kubeconfig: kubeconfig, CallbackAddr: callbackAddr, LogPath: mgrLog}.Start(ctx)
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping the manager.")
		// After Ctrl-C in a terminal the manager got the SIGINT too, and SIGTERM on top of it makes it
		// exit 1: nothing to report then.
		if err := mgr.Stop(); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
		}
	}()
	say("Manager up (leader election off, --allow-insecure-endpoints and --allowed-endpoint-hosts=127.0.0.1:* for the simulator's http:// URL);")
	indent("it serves the OAuth2 callback on %s", mgr.CallbackURL)
	indent("logs: %s, %s", rel(root, mgrLog), rel(root, simLog))

	explainKubeconfig(root, kubeconfig, o.namespace)

	samples := o.samples
	if !filepath.IsAbs(samples) {
		samples = filepath.Join(root, samples)
	}
	got, err := applySamples(ctx, cp.Client, root, samples, o.namespace, targets{endpoint: sim.URL, keepAlive: o.keepAlive, callbackURL: mgr.CallbackURL})
	if err != nil {
		return err
	}
	if len(got.apps) == 0 {
		return fmt.Errorf("no ThingSpaceApp in %s", samples)
	}

	n := &narrator{c: cp.Client, sim: sim, ns: o.namespace, lifetime: o.lifetime, keepAlive: o.keepAlive,
		apps: map[string]*appView{}, sessions: map[string]*sessionView{}, clouds: map[string]*cloudView{},
		person: cloud.NewPerson(sim, 1)}
	for _, name := range got.apps {
		n.order = append(n.order, name)
		n.apps[name] = &appView{name: name}
	}
	for _, name := range got.sessions {
		n.sessionOrder = append(n.sessionOrder, name)
		n.sessions[name] = &sessionView{name: name}
	}
	for _, name := range got.clouds {
		n.cloudOrder = append(n.cloudOrder, name)
		n.clouds[name] = &cloudView{name: name}
	}
	ran := n.run(ctx, o.duration)
	if ran != nil && !errors.Is(ran, context.Canceled) {
		return ran
	}
	return n.summary(o)
}

// writeKubeconfig copies the control plane's admin kubeconfig to path (0600).
func writeKubeconfig(from, path string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func explainKubeconfig(root, path, ns string) {
	p := rel(root, path)
	say("kubeconfig for this cluster: %s (valid while the demo runs; removed on exit)", p)
	kubectl := ""
	if _, err := exec.LookPath("kubectl"); err == nil {
		kubectl = "kubectl"
	} else if assets, err := harness.AssetsDir(); err == nil {
		if _, err := os.Stat(filepath.Join(assets, "kubectl")); err == nil {
			kubectl = rel(root, filepath.Join(assets, "kubectl"))
		}
	}
	if kubectl == "" {
		indent("kubectl is not installed; the demo prints what `kubectl get tsapp` would show. With kubectl:")
		kubectl = "kubectl"
	} else {
		indent("in another terminal:")
	}
	indent("  export KUBECONFIG=%s", p)
	indent("  %s get tsapp -n %s -w", kubectl, ns)
	indent("  %s get m2m -n %s -w", kubectl, ns)
	indent("  %s get cloudauth -n %s -w", kubectl, ns)
	indent("  %s describe secret -n %s   # data sizes only, not the token", kubectl, ns)
}
