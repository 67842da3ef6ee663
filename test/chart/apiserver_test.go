package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credops/thingspace-operator/test/harness"
)

// The API server is started once, by the first test that needs it, and stopped by TestMain.
var (
	apiOnce   sync.Once
	apiEnv    *envtest.Environment
	apiClient client.Client
	apiErr    error
	// apiKubeconfig is a kubeconfig of a system:masters user of that API server, for helm.
	apiKubeconfig string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tsop-chart-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmHome = dir
	code := m.Run()
	if apiEnv != nil {
		if err := apiEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the API server:", err)
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// apiServer returns a client of a kube-apiserver (envtest, KUBEBUILDER_ASSETS) with no CRDs of the
// operator installed, so the chart's CRDs are dry-run created as on a fresh cluster. The release
// namespace exists for real (namespaced dry-runs need it), and so do minimal monitoring.coreos.com CRDs.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	apiOnce.Do(func() { apiClient, apiErr = startAPIServer() })
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return apiClient
}

func startAPIServer() (client.Client, error) {
	assets, err := harness.AssetsDir()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	apiEnv = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		// Only stand-ins for the Prometheus Operator's ServiceMonitor and PodMonitor CRDs (see the
		// file); the chart's own CRDs come from the chart, dry-run.
		CRDDirectoryPaths:        []string{filepath.Join("testdata", "monitoring-crds.yaml")},
		ErrorIfCRDPathMissing:    true,
		UseExistingCluster:       ptr.To(false),
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := apiEnv.Start()
	if err != nil {
		apiEnv = nil
		return nil, fmt.Errorf("start kube-apiserver (assets %s): %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	user, err := apiEnv.AddUser(envtest.User{Name: "chart-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	apiKubeconfig = filepath.Join(helmHome, "kubeconfig")
	if err := os.WriteFile(apiKubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Enforcing the restricted Pod Security Standard, as config/manager's Namespace does, so
	// dryRunPod checks the chart's pods against it.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := c.Create(ctx, ns); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return c, nil
}

// dryRun creates every object in a server-side dry-run with strict field validation (an unknown or
// duplicated field is an error, not a warning), and reports each refusal.
func dryRun(t *testing.T, objs objects) {
	t.Helper()
	c := apiServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, o := range objs {
		obj := o.DeepCopy()
		if err := c.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("the API server refuses %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// dryRunPod creates a Pod from the Deployment's template in a server-side dry-run: in the release
// namespace, which enforces the restricted Pod Security Standard (Pod Security admission checks pods,
// not Deployments), so a pod the kubelet would never get is an error here.
func dryRunPod(t *testing.T, d *appsv1.Deployment) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: *d.Spec.Template.ObjectMeta.DeepCopy(), Spec: *d.Spec.Template.Spec.DeepCopy()}
	pod.Name, pod.Namespace = d.Name+"-dry-run", d.Namespace
	return apiServer(t).Create(ctx, pod, client.DryRunAll, client.FieldValidation("Strict"))
}
