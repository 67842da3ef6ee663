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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/hack/internal/cloud"
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
	go onSignals(cancel)

	if err := run(ctx, o); err != nil {
		if ctx.Err() != nil {
			say("Interrupted during start-up; everything that had started was stopped.")
			return
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// onSignals ends the demo on the first SIGINT or SIGTERM, so that everything is stopped in order. A
// third one exits at once (kube-apiserver and etcd may then be left running).
func onSignals(cancel context.CancelFunc) {
	ch := make(chan os.Signal, 3)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	for n := 1; ; n++ {
		<-ch
		switch n {
		case 1:
			cancel()
		case 2:
			say("Still stopping; Ctrl-C once more exits at once and may leave kube-apiserver and etcd running.")
		default:
			os.Exit(130)
		}
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// step prints a line that stands out: something the operator did.
func step(format string, args ...any) { say("▶ "+format, args...) }

// indent prints detail lines under the last one.
func indent(format string, args ...any) {
	fmt.Printf("%s    %s\n", strings.Repeat(" ", len("15:04:05.000")), fmt.Sprintf(format, args...))
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
	type built struct {
		mgr, sim string
		err      error
	}
	bc := make(chan built, 1)
	go func() {
		m, s, err := harness.BuildBinaries(ctx, dir)
		bc <- built{m, s, err}
	}()
	cp, cpErr := harness.StartControlPlane(ctx)
	b := <-bc
	if cpErr != nil {
		return cpErr
	}
	defer func() {
		say("Stopping the control plane.")
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping the control plane:", err)
		}
	}()
	if b.err != nil {
		return b.err
	}
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
		Binary: b.sim,
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

	mgr, err := harness.ManagerConfig{Binary: b.mgr, Kubeconfig: kubeconfig, CallbackAddr: callbackAddr, LogPath: mgrLog}.Start(ctx)
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
	say("Manager up (leader election off, --allow-insecure-endpoints for the simulator's http:// URL);")
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

// targets are what the samples are pointed at.
type targets struct {
	endpoint    string        // the simulator's URL
	keepAlive   time.Duration // the M2MSessions' keepAlive.interval
	callbackURL string        // the manager's OAuth2 callback
}

// applied names the objects applySamples created, by kind.
type applied struct{ apps, sessions, clouds []string }

// applySamples creates the objects of the manifests listed by dir's kustomization.yaml (else every
// *.yaml in dir) in namespace ns: Secrets a ThingSpaceApp reads its credentials from get the
// simulator's demo app, ThingSpaceApps get the simulator as their endpoint, Secrets an M2MSession
// reads its credentials from get the simulator's demo UWS user, M2MSessions get keepAlive.interval,
// Secrets a CloudAuthorization reads its credentials from get the simulator's demo Cloud app, and
// CloudAuthorizations get the simulator's Cloud API and the manager's callback URL.
func applySamples(ctx context.Context, c client.Client, root, dir, ns string, t targets) (got applied, err error) {
	files, err := sampleFiles(dir)
	if err != nil {
		return got, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		read, err := readManifests(f)
		if err != nil {
			return got, err
		}
		objs = append(objs, read...)
	}

	credentials := map[string]bool{}      // the apps'
	uwsCredentials := map[string]bool{}   // the sessions'
	cloudCredentials := map[string]bool{} // the CloudAuthorizations'
	for _, u := range objs {
		var (
			creds   map[string]bool
			set     map[string]any // spec fields to set, by dotted path
			created *[]string
		)
		switch u.GroupVersionKind().GroupKind() {
		case v1alpha1.GroupVersion.WithKind("ThingSpaceApp").GroupKind():
			creds, created, set = credentials, &got.apps, map[string]any{"endpoint": t.endpoint}
		case v1alpha1.GroupVersion.WithKind("M2MSession").GroupKind():
			creds, created, set = uwsCredentials, &got.sessions, map[string]any{"keepAlive.interval": t.keepAlive.String()}
		case v1alpha1.GroupVersion.WithKind("CloudAuthorization").GroupKind():
			creds, created, set = cloudCredentials, &got.clouds, map[string]any{"endpoint": cloud.Endpoint(t.endpoint), "callbackURL": t.callbackURL}
		default:
			continue
		}
		name, _, _ := unstructured.NestedString(u.Object, "spec", "credentialsSecretRef", "name")
		creds[name] = true
		for path, v := range set {
			if err := unstructured.SetNestedField(u.Object, v, append([]string{"spec"}, strings.Split(path, ".")...)...); err != nil {
				return got, err
			}
		}
		*created = append(*created, u.GetName())
	}
	for _, u := range objs {
		if u.GetKind() != "Secret" || u.GetAPIVersion() != "v1" {
			continue
		}
		var data map[string]string
		switch {
		case credentials[u.GetName()]:
			data = map[string]string{"key": demoKey, "secret": demoSecret}
		case uwsCredentials[u.GetName()]:
			data = map[string]string{"username": demoUWSUser, "password": demoUWSPassword}
		case cloudCredentials[u.GetName()]:
			data = map[string]string{"key": demoCloudKey, "secret": demoCloudSecret}
		default:
			continue
		}
		delete(u.Object, "data")
		if err := unstructured.SetNestedStringMap(u.Object, data, "stringData"); err != nil {
			return got, err
		}
	}
	// Secrets first, so that no ThingSpaceApp is reconciled before its credentials exist.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolRank(a.GetKind() != "Secret") - boolRank(b.GetKind() != "Secret")
	})

	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return got, err
	}
	say("Applying the samples from %s to namespace %s:", rel(root, dir), ns)
	for _, u := range objs {
		u.SetNamespace(ns)
		if err := createOrReplace(ctx, c, u); err != nil {
			return got, fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		switch {
		case credentials[u.GetName()] && u.GetKind() == "Secret":
			step("Secret %s/%s created: the app's credentials (key=%s, secret hidden)", ns, u.GetName(), demoKey)
		case uwsCredentials[u.GetName()] && u.GetKind() == "Secret":
			step("Secret %s/%s created: the UWS credentials (username=%s, password hidden)", ns, u.GetName(), demoUWSUser)
		case cloudCredentials[u.GetName()] && u.GetKind() == "Secret":
			step("Secret %s/%s created: the Verizon Cloud app's credentials (key=%s, secret hidden)", ns, u.GetName(), demoCloudKey)
		case u.GetKind() == "ThingSpaceApp":
			secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			step("ThingSpaceApp %s/%s created: endpoint %s, token to Secret %s", ns, u.GetName(), t.endpoint, secretName)
		case u.GetKind() == "M2MSession":
			secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			app, _, _ := unstructured.NestedString(u.Object, "spec", "appRef", "name")
			account, _, _ := unstructured.NestedString(u.Object, "spec", "keepAlive", "accountName")
			step("M2MSession %s/%s created: session of ThingSpaceApp %s to Secret %s, kept alive every %s by reading account %s (the sample says 10m)",
				ns, u.GetName(), app, secretName, t.keepAlive, account)
		case u.GetKind() == "CloudAuthorization":
			secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			step("CloudAuthorization %s/%s created: endpoint %s, callbackURL %s (the sample's is example.com's), tokens to Secret %s",
				ns, u.GetName(), cloud.Endpoint(t.endpoint), t.callbackURL, secretName)
		default:
			step("%s %s/%s created", u.GetKind(), ns, u.GetName())
		}
	}
	return got, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sampleFiles(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err == nil {
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(b)), 4096).Decode(&k); err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
		}
		out := make([]string, 0, len(k.Resources))
		for _, r := range k.Resources {
			out = append(out, filepath.Join(dir, r))
		}
		return out, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return filepath.Glob(filepath.Join(dir, "*.yaml"))
}

// readManifests decodes every YAML document in path.
func readManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) == 0 {
			continue // an empty document
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func createOrReplace(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	err := c.Create(ctx, u.DeepCopy())
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(u.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
		return err
	}
	upd := u.DeepCopy()
	upd.SetResourceVersion(cur.GetResourceVersion())
	return c.Update(ctx, upd)
}

// appView is what the narrator last saw of one ThingSpaceApp and its Secret.
type appView struct {
	name        string
	ready       string    // "True (TokenValid)"
	token       string    // fingerprint
	tokenAt     time.Time // when this token was first seen in the Secret
	expiresAt   time.Time
	tokens      int       // distinct tokens seen
	rotations   int       // automatic rotations seen
	rotatedAt   time.Time // when the first automatic rotation was seen
	manualValue string
	manualAt    time.Time
	manualDone  bool
}

type narrator struct {
	c         client.Client
	sim       *harness.Sim
	ns        string
	lifetime  time.Duration
	keepAlive time.Duration
	order     []string
	apps      map[string]*appView
	// The M2MSessions, in the order of the samples.
	sessionOrder []string
	sessions     map[string]*sessionView
	// The CloudAuthorizations, in the order of the samples, and the person who consents.
	cloudOrder []string
	clouds     map[string]*cloudView
	person     *cloud.Person
	start      time.Time
	warned     bool
	// Last counts the simulator reported.
	requests, revokes int
}

// run polls the ThingSpaceApps and their Secrets until ctx ends or d (when positive) has passed.
func (n *narrator) run(ctx context.Context, d time.Duration) error {
	n.start = time.Now()
	if d > 0 {
		say("Watching for %s (--duration). Ctrl-C stops earlier.", d)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	} else {
		say("Watching. Ctrl-C stops the demo.")
	}
	for {
		n.observeAll(ctx, n.order, func(name string) error { return n.observe(ctx, n.apps[name]) })
		// After the apps: a token change seen in an app's Secret this round can be matched in the
		// session Secret at once.
		n.observeAll(ctx, n.sessionOrder, func(name string) error { return n.observeSession(ctx, n.sessions[name]) })
		n.observeAll(ctx, n.cloudOrder, func(name string) error { return n.observeCloud(ctx, n.clouds[name]) })
		select {
		case <-ctx.Done():
			fmt.Println()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				say("%s have passed.", d)
				return nil
			}
			say("Interrupted.")
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// observeAll observes each of names, warning once when one cannot be read.
func (n *narrator) observeAll(ctx context.Context, names []string, observe func(name string) error) {
	for _, name := range names {
		if err := observe(name); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !n.warned {
				say("(could not read %s: %v; retrying)", name, err)
				n.warned = true
			}
		}
	}
}

// narrateCondition prints condition typ of the object name when its status or reason differs from
// *last ("True (TokenValid)"), and remembers it there.
func narrateCondition(name, typ string, conds []metav1.Condition, last *string) {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return
	}
	if r := string(c.Status) + " (" + c.Reason + ")"; r != *last {
		*last = r
		step("%s: %s=%s: %s", name, typ, r, c.Message)
	}
}

func (n *narrator) observe(ctx context.Context, v *appView) error {
	app := &v1alpha1.ThingSpaceApp{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: v.name}, app); err != nil {
		return err
	}
	narrateCondition(v.name, v1alpha1.ConditionReady, app.Status.Conditions, &v.ready)

	s, err := n.secret(ctx, app.Spec.SecretName)
	if s == nil {
		return err
	}
	tok := string(s.Data[harness.KeyAccessToken])
	if tok == "" {
		return nil
	}
	fp := fingerprint(tok)
	if fp != v.token {
		now := time.Now()
		prevExpiry := v.expiresAt
		v.token, v.tokenAt = fp, now
		v.tokens++
		v.expiresAt, _ = time.Parse(time.RFC3339, string(s.Data[harness.KeyExpiresAt]))
		requests, revokes := n.counts()
		switch {
		case v.tokens == 1:
			step("%s: the operator wrote Secret %s/%s", v.name, n.ns, s.Name)
			indent("data keys: %s (token_type %s)", strings.Join(sortedKeys(s.Data), ", "), s.Data[harness.KeyTokenType])
			indent("labels: %s; controlled by ThingSpaceApp %s", formatLabels(s.Labels), controller(s))
			indent("access_token: %s (fingerprint; the token itself is never printed)", fp)
			indent("expires_at:   %s (%s)", s.Data[harness.KeyExpiresAt], until(v.expiresAt))
			indent("token requests to ThingSpace so far: %d", requests)
		case v.manualValue != "" && !v.manualDone:
			v.manualDone = true
			step("%s: manual refresh done %s after the request: old token revoked, new one issued", v.name, now.Sub(v.manualAt).Round(time.Millisecond))
			indent("access_token: %s, expires_at %s (%s)", fp, s.Data[harness.KeyExpiresAt], until(v.expiresAt))
			indent("token requests so far: %d, revokes: %d", requests, revokes)
		default:
			v.rotations++
			if v.rotations == 1 {
				v.rotatedAt = now
			}
			step("%s: rotated at %s: the old token expired at %s", v.name, now.UTC().Format("15:04:05.000Z"), prevExpiry.UTC().Format("15:04:05.000Z"))
			indent("new access_token: %s, expires_at %s (%s)", fp, s.Data[harness.KeyExpiresAt], until(v.expiresAt))
			indent("token requests so far: %d (renewBefore is unset: ThingSpace hands out the same token until it expires)", requests)
		}
		n.table(ctx)
		if v.rotations == 1 && v.manualValue == "" {
			indent("next: a manual refresh in %s, through the annotation %s", n.manualDelay(), v1alpha1.RefreshRequestedAnnotation)
		} else {
			indent("next: automatic rotation when this token expires, %s", until(v.expiresAt))
		}
	}

	if v.rotations >= 1 && v.manualValue == "" && time.Since(v.rotatedAt) >= n.manualDelay() {
		if err := n.requestRefresh(ctx, app, v); err != nil {
			return err
		}
	}
	return nil
}

// secret reads the Secret name of the namespace: nil and no error while it does not exist.
func (n *narrator) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: name}, s); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return s, nil
}

// manualDelay is how long after the first rotation the manual refresh is asked for: well before the
// next automatic one.
func (n *narrator) manualDelay() time.Duration { return min(manualDelay, n.lifetime/4) }

func (n *narrator) requestRefresh(ctx context.Context, app *v1alpha1.ThingSpaceApp, v *appView) error {
	value := time.Now().UTC().Format(time.RFC3339)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.RefreshRequestedAnnotation, value)
	if err := n.c.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return fmt.Errorf("annotate %s: %w", v.name, err)
	}
	v.manualValue, v.manualAt = value, time.Now()
	fmt.Println()
	step("%s: asking for a manual refresh, as", v.name)
	indent("kubectl annotate tsapp %s -n %s %s=%s --overwrite", v.name, n.ns, v1alpha1.RefreshRequestedAnnotation, value)
	return nil
}

// counts returns the simulator's token and revoke request counts; when it cannot be asked (it has
// gone with Ctrl-C, say), the last ones it gave.
func (n *narrator) counts() (requests, revokes int) {
	if r, err := n.sim.TokenRequests(); err == nil {
		n.requests = r
	}
	if r, err := n.sim.RevokeRequests(); err == nil {
		n.revokes = r
	}
	return n.requests, n.revokes
}

// table prints the ThingSpaceApps of the namespace as `kubectl get tsapp` lays them out, with Expires
// shown as the time left.
func (n *narrator) table(ctx context.Context) {
	list := &v1alpha1.ThingSpaceAppList{}
	if err := n.c.List(ctx, list, client.InNamespace(n.ns)); err != nil {
		return
	}
	rows := make([][]string, 0, len(list.Items))
	for _, a := range list.Items {
		rows = append(rows, []string{a.Name, conditionStatus(a.Status.Conditions, v1alpha1.ConditionReady), a.Spec.SecretName,
			untilPtr(a.Status.ExpiresAt), age(a.CreationTimestamp)})
	}
	n.printTable("tsapp", []string{"NAME", "READY", "SECRET", "EXPIRES", "AGE"}, rows)
}

// printTable prints rows as `kubectl get <resource>` lays them out.
func (n *narrator) printTable(resource string, header []string, rows [][]string) {
	fmt.Println()
	indent("$ kubectl get %s -n %s", resource, n.ns)
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, row := range append([][]string{header}, rows...) {
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	_ = w.Flush()
	for line := range strings.SplitSeq(strings.TrimRight(b.String(), "\n"), "\n") {
		indent("%s", line)
	}
	fmt.Println()
}

// conditionStatus is the status of condition typ, as a printer column shows it.
func conditionStatus(conds []metav1.Condition, typ string) string {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return string(c.Status)
	}
	return "<none>"
}

// untilPtr is until for an optional status time.
func untilPtr(t *metav1.Time) string {
	if t == nil {
		return "<none>"
	}
	return until(t.Time)
}

func age(created metav1.Time) string { return duration.HumanDuration(time.Since(created.Time)) }

// sessionView is what the narrator last saw of one M2MSession and its Secret.
type sessionView struct {
	name        string
	ready       string
	session     string // fingerprint of session_token
	sessions    int    // distinct sessions seen
	accessToken string // fingerprint of access_token
	follows     int    // changes of access_token after the first that matched the app's token
	lastKA      time.Time
	keepAlives  int  // keep-alives seen in the status
	tabled      bool // the `kubectl get m2m` table was shown (once the first session is Ready)
}

// observeSession narrates one M2MSession: its Ready changes, the session Secret being written, a new
// session (a re-login), each keep-alive, and access_token following the app's token.
func (n *narrator) observeSession(ctx context.Context, v *sessionView) error {
	sess := &v1alpha1.M2MSession{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: v.name}, sess); err != nil {
		return err
	}
	narrateCondition(v.name, v1alpha1.ConditionReady, sess.Status.Conditions, &v.ready)
	app := n.apps[sess.Spec.AppRef.Name]

	s, err := n.secret(ctx, sess.Spec.SecretName)
	if s == nil {
		return err
	}
	session, access := string(s.Data[harness.KeySessionToken]), string(s.Data[harness.KeyAccessToken])
	if session == "" || access == "" {
		return nil
	}
	now := time.Now()
	sfp, afp := fingerprint(session), fingerprint(access)
	if sfp != v.session {
		v.session = sfp
		v.sessions++
		logins, keepAlives := n.m2mCounts()
		if v.sessions == 1 {
			step("%s: logged in as %s; the operator wrote Secret %s/%s", v.name, demoUWSUser, n.ns, s.Name)
			indent("data keys: %s; controlled by M2MSession %s", strings.Join(sortedKeys(s.Data), ", "), controller(s))
			indent("session_token: %s (the VZ-M2M-Token header; fingerprint, never the token)", sfp)
			indent("access_token:  %s (the Authorization: Bearer header: ThingSpaceApp %s's current token, %s)", afp,
				sess.Spec.AppRef.Name, sameAs(app, afp))
			indent("access_token_expires_at: %s", s.Data[harness.KeyAccessTokenExpiresAt])
			indent("logins to ThingSpace so far: %d; next: a keep-alive (account %s) every %s, so that this one login lasts",
				logins, sess.Spec.KeepAlive.AccountName, n.keepAlive)
		} else {
			step("%s: a new session in the Secret: %s (login #%d; keep-alives so far %d)", v.name, sfp, logins, keepAlives)
		}
	}
	if afp != v.accessToken {
		if v.accessToken != "" {
			if app != nil && app.token == afp {
				v.follows++
				lag := "within " + pollInterval.String() + " of the app's Secret changing (seen in the same look)"
				if d := now.Sub(app.tokenAt); d >= pollInterval {
					lag = d.Round(time.Millisecond).String() + " after the app's Secret changed"
				}
				step("%s: access_token followed ThingSpaceApp %s's new token: %s → %s, %s; same session %s",
					v.name, app.name, v.accessToken, afp, lag, sfp)
				indent("access_token_expires_at: %s", s.Data[harness.KeyAccessTokenExpiresAt])
			} else {
				step("%s: access_token is now %s (%s)", v.name, afp, sameAs(app, afp))
			}
		}
		v.accessToken = afp
	}
	if ka := sess.Status.LastKeepAliveTime; ka != nil && !ka.Time.Equal(v.lastKA) {
		v.lastKA = ka.Time
		v.keepAlives++
		logins, keepAlives := n.m2mCounts()
		next := "unknown"
		if t := sess.Status.NextKeepAliveTime; t != nil {
			next = until(t.Time)
		}
		step("%s: keep-alive at %s: account read with session %s; logins so far %d, keep-alives %d; next %s",
			v.name, ka.UTC().Format("15:04:05Z"), sfp, logins, keepAlives, next)
	}
	if !v.tabled && v.sessions > 0 && strings.HasPrefix(v.ready, "True") {
		v.tabled = true
		n.sessionTable(ctx)
	}
	return nil
}

// sameAs says whether fp is the app's current token as last seen.
func sameAs(app *appView, fp string) string {
	switch {
	case app == nil:
		return "app not watched"
	case app.token == fp:
		return "the same as in " + app.name + "'s Secret"
	default:
		return "not the token last seen in " + app.name + "'s Secret"
	}
}

// m2mCounts returns the simulator's login and keep-alive (account read) counts; 0 when it cannot be
// asked.
func (n *narrator) m2mCounts() (logins, keepAlives int) {
	logins, _ = n.sim.Total(harness.RouteM2MLogin)
	keepAlives, _ = n.sim.Total(harness.RouteM2MAccount)
	return logins, keepAlives
}

// sessionTable prints the M2MSessions of the namespace as `kubectl get m2m` lays them out.
func (n *narrator) sessionTable(ctx context.Context) {
	list := &v1alpha1.M2MSessionList{}
	if err := n.c.List(ctx, list, client.InNamespace(n.ns)); err != nil {
		return
	}
	rows := make([][]string, 0, len(list.Items))
	for _, s := range list.Items {
		login := "<none>"
		if s.Status.LastLoginTime != nil {
			login = age(*s.Status.LastLoginTime)
		}
		rows = append(rows, []string{s.Name, conditionStatus(s.Status.Conditions, v1alpha1.ConditionReady), s.Spec.SecretName,
			login, age(s.CreationTimestamp)})
	}
	n.printTable("m2m", []string{"NAME", "READY", "SECRET", "LAST LOGIN", "AGE"}, rows)
}

// summary prints what was seen and, with --duration, fails when a step that fitted in it did not happen.
func (n *narrator) summary(o options) error {
	requests, revokes := n.counts()
	say("Summary after %s:", time.Since(n.start).Round(time.Second))
	var missing []string
	for _, name := range n.order {
		v := n.apps[name]
		manual := "no manual refresh"
		if v.manualDone {
			manual = "1 manual refresh"
		}
		indent("%s: %s written, %s, %s; Ready=%s", name, plural(v.tokens, "token"), plural(v.rotations, "automatic rotation"), manual, v.ready)
		if o.duration == 0 {
			continue
		}
		// Start-up to the first token takes a second or two; a rotation comes a lifetime later and the
		// manual refresh manualDelay after it.
		if v.tokens == 0 {
			missing = append(missing, name+": no token was written")
		}
		if o.duration >= o.lifetime+10*time.Second && v.rotations == 0 {
			missing = append(missing, name+": no automatic rotation")
		}
		if o.duration >= o.lifetime+manualDelay+10*time.Second && !v.manualDone {
			missing = append(missing, name+": the manual refresh did not happen")
		}
	}
	indent("token requests to ThingSpace: %d, revokes: %d", requests, revokes)
	for _, name := range n.sessionOrder {
		v := n.sessions[name]
		indent("%s: %s, %s seen, access_token followed the app's token %s; Ready=%s", name, plural(v.sessions, "session"),
			plural(v.keepAlives, "keep-alive"), plural(v.follows, "time"), v.ready)
		if o.duration == 0 {
			continue
		}
		if v.sessions == 0 {
			missing = append(missing, name+": no session was written")
		}
		if o.duration >= o.keepAlive+10*time.Second && v.keepAlives == 0 {
			missing = append(missing, name+": no keep-alive")
		}
		if o.duration >= o.lifetime+10*time.Second && v.follows == 0 {
			missing = append(missing, name+": access_token did not follow an app token change")
		}
	}
	if len(n.sessionOrder) > 0 {
		logins, keepAlives := n.m2mCounts()
		indent("UWS logins to ThingSpace: %d, keep-alives: %d", logins, keepAlives)
	}
	missing = append(missing, n.cloudSummary(o)...)
	if len(missing) > 0 {
		return fmt.Errorf("expected within %s but not seen: %s", o.duration, strings.Join(missing, "; "))
	}
	return nil
}

// fingerprint identifies a token without revealing it: the start of its SHA-256.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:])[:12] + "…"
}

func until(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := time.Until(t)
	if d < 0 {
		return "expired " + duration.HumanDuration(-d) + " ago"
	}
	return "in " + duration.HumanDuration(d)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatLabels(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func controller(s *corev1.Secret) string {
	if ref := metav1.GetControllerOf(s); ref != nil {
		return ref.Name
	}
	return "(none)"
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
