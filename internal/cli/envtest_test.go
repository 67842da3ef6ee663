package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// The integration tests run the commands in-process, through the real kubeconfig loading, against a
// real kube-apiserver and etcd (envtest) with the operator's CRDs. No operator runs: a test that needs
// one plays its part by writing the status the real controller writes.
var (
	cp      *harness.ControlPlane
	dir     string // kubeconfigs the tests write
	nsCount atomic.Int32
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if cp, err = harness.StartControlPlane(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	if dir, err = os.MkdirTemp("", "kubectl-thingspace-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	return m.Run()
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, nsCount.Add(1))
	if err := cp.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// kubeconfig writes the admin kubeconfig with its current context's namespace set to ns (empty: none)
// and a second context "other" in namespace otherNS, and returns its path.
func kubeconfig(t *testing.T, ns, otherNS string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cp.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cur := *cfg.Contexts[cfg.CurrentContext]
	cur.Namespace = ns
	cfg.Contexts[cfg.CurrentContext] = &cur
	other := cur
	other.Namespace = otherNS
	cfg.Contexts["other"] = &other
	path := filepath.Join(dir, fmt.Sprintf("admin-%d", nsCount.Add(1)))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// viewerKubeconfig is a kubeconfig for a user who may only list (not get, not patch, unless extraVerbs
// says so) the three kinds in ns, and nothing else (no Secret).
func viewerKubeconfig(t *testing.T, ns string, extraVerbs ...string) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("viewer-%d", nsCount.Add(1))
	user, err := cp.Env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{v1alpha1.GroupVersion.Group}, Verbs: append([]string{"list"}, extraVerbs...),
		Resources: []string{"thingspaceapps", "m2msessions", "cloudauthorizations"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}}
	for _, o := range []client.Object{role, binding} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is what one run printed.
type result struct {
	code     int
	out, err string
}

// run runs the plugin in-process with clk and env's Open, through the real Connect.
func run(t *testing.T, clk clock.Clock, env Env, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	env.Stdout, env.Stderr, env.Clock = &out, &errOut, clk
	if env.PollInterval == 0 {
		env.PollInterval = 50 * time.Millisecond
	}
	code := Run(context.Background(), args, env)
	return result{code, out.String(), errOut.String()}
}

// create creates obj, then writes the status it was given (the API server drops it on create).
func create(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	withStatus := obj.DeepCopyObject().(client.Object)
	if err := cp.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	copyStatus(withStatus, obj)
	if err := cp.Client.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
}

func copyStatus(from, to client.Object) {
	switch f := from.(type) {
	case *v1alpha1.ThingSpaceApp:
		to.(*v1alpha1.ThingSpaceApp).Status = f.Status
	case *v1alpha1.M2MSession:
		to.(*v1alpha1.M2MSession).Status = f.Status
	case *v1alpha1.CloudAuthorization:
		to.(*v1alpha1.CloudAuthorization).Status = f.Status
	case *v1alpha1.ClusterThingSpaceApp:
		to.(*v1alpha1.ClusterThingSpaceApp).Status = f.Status
	}
}

func objMeta(ns, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}
}

func newApp(ns, name string, labels map[string]string, st v1alpha1.ThingSpaceAppStatus) *v1alpha1.ThingSpaceApp {
	return &v1alpha1.ThingSpaceApp{ObjectMeta: objMeta(ns, name, labels), Status: st, Spec: v1alpha1.ThingSpaceAppSpec{
		CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: name + "-creds"}, SecretName: name + "-token"}}
}

func newM2M(ns, name string, labels map[string]string, st v1alpha1.M2MSessionStatus) *v1alpha1.M2MSession {
	return &v1alpha1.M2MSession{ObjectMeta: objMeta(ns, name, labels), Status: st, Spec: v1alpha1.M2MSessionSpec{
		AppRef:               &v1alpha1.LocalObjectReference{Name: "app"},
		CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: name + "-creds"}, SecretName: name + "-session"}}
}

func newCloud(ns, name string, labels map[string]string, st v1alpha1.CloudAuthorizationStatus) *v1alpha1.CloudAuthorization {
	return &v1alpha1.CloudAuthorization{ObjectMeta: objMeta(ns, name, labels), Status: st, Spec: v1alpha1.CloudAuthorizationSpec{
		CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: name + "-creds"}, SecretName: name + "-tokens",
		CallbackURL: "https://operator.example/oauth2/callback"}}
}

func ptr(t metav1.Time) *metav1.Time { return &t }
