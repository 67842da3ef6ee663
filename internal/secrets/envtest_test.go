package secrets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// The API server of this package's envtest tests: server-side apply, managed fields and preconditions
// are the API server's, and a fake client only approximates them.
var (
	apiConfig *rest.Config
	apiScheme *runtime.Scheme
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("..", "..", "bin", "k8s")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v (run `make envtest` to build the control plane binaries)\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	apiConfig = cfg
	apiScheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(apiScheme))
	utilruntime.Must(v1alpha1.AddToScheme(apiScheme))
	return m.Run()
}

// apiFixture is one test's namespace, an owner object in it, a Writer on the API server (no caches:
// reads go straight to it) and a client acting as other field managers would.
type apiFixture struct {
	t     *testing.T
	ns    string
	owner *v1alpha1.ThingSpaceApp
	w     *Writer
	c     client.Client
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	c, err := client.New(apiConfig, client.Options{Scheme: apiScheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "secrets-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// Only its name and UID matter for an ownerReference; envtest runs no garbage collector, so it need
	// not exist (the CRDs are not installed here).
	owner := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "owner", UID: "uid-owner"}}
	return &apiFixture{t: t, ns: ns.Name, owner: owner, c: c,
		w: &Writer{Client: c, Meta: c, Reader: c, Scheme: apiScheme}}
}

func (f *apiFixture) get(name string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
		f.t.Fatal(err)
	}
	return s
}
