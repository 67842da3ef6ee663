package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// AssetsEnv names the directory holding kube-apiserver and etcd.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// ControlPlane is a kube-apiserver and etcd started by envtest, with the operator's CRDs installed.
type ControlPlane struct {
	// Env is the envtest environment.
	Env *envtest.Environment
	// Config is the admin configuration envtest made.
	Config *rest.Config
	// Client talks to the API server directly (no cache), with client-go's types and ours.
	Client client.Client
	// Scheme is Client's scheme.
	Scheme *runtime.Scheme
	// KubeconfigPath is a kubeconfig file for the user e2e-admin (group system:masters).
	KubeconfigPath string

	dir string
}

// NewScheme returns a scheme with client-go's types and the operator's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// AssetsDir is where kube-apiserver and etcd are: $KUBEBUILDER_ASSETS, else <repo>/bin/k8s. It fails,
// naming the fix, when either binary is missing: tests that need them must not be skipped.
func AssetsDir() (string, error) {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "k8s")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, bin))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("no executable %s in %s (%s=%q): run `make envtest` (or point %s at a directory with kube-apiserver and etcd)",
				bin, dir, AssetsEnv, os.Getenv(AssetsEnv), AssetsEnv)
		}
	}
	return dir, nil
}

// RepoRoot is the directory holding go.mod, found by walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// StartControlPlane starts etcd and kube-apiserver from AssetsDir, installs the CRDs from
// config/crd/bases and writes a kubeconfig for an admin user.
func StartControlPlane(ctx context.Context) (*ControlPlane, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	useExisting := false
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		UseExistingCluster:       &useExisting,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	type started struct {
		cfg *rest.Config
		err error
	}
	// envtest has no context; honour ctx by giving up on the wait (and stopping what started).
	ch := make(chan started, 1)
	go func() {
		cfg, err := env.Start()
		ch <- started{cfg, err}
	}()
	var cfg *rest.Config
	select {
	case s := <-ch:
		if s.err != nil {
			return nil, fmt.Errorf("start control plane (assets %s): %w", assets, s.err)
		}
		cfg = s.cfg
	case <-ctx.Done():
		go func() {
			if s := <-ch; s.err == nil {
				_ = env.Stop()
			}
		}()
		return nil, fmt.Errorf("start control plane: %w", ctx.Err())
	}
	cp := &ControlPlane{Env: env, Config: cfg, Scheme: NewScheme()}
	if err := cp.setup(); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) setup() error {
	var err error
	if cp.Client, err = client.New(cp.Config, client.Options{Scheme: cp.Scheme}); err != nil {
		return err
	}
	user, err := cp.Env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	if cp.dir, err = os.MkdirTemp("", "thingspace-e2e-kube-"); err != nil {
		return err
	}
	cp.KubeconfigPath = filepath.Join(cp.dir, "kubeconfig")
	return os.WriteFile(cp.KubeconfigPath, kc, 0o600)
}

// Stop stops kube-apiserver and etcd and removes the kubeconfig.
func (cp *ControlPlane) Stop() error {
	err := cp.Env.Stop()
	if cp.dir != "" {
		_ = os.RemoveAll(cp.dir)
	}
	return err
}

// RunSuite is a test binary's TestMain body for a suite sharing one control plane: it starts the plane
// (bounded to two minutes) into *cp, runs the tests and stops the plane, returning the exit code.
func RunSuite(m *testing.M, cp **ControlPlane) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plane, err := StartControlPlane(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v (run make envtest)\n", err)
		return 1
	}
	defer func() { _ = plane.Stop() }()
	*cp = plane
	return m.Run()
}
