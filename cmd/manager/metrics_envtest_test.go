package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// TestMetricsNeedATokenBoundToMetricsReader serves metrics as the deployed manager does (metricsOptions
// with --metrics-secure's default) against a real API server, the manager running as a ServiceAccount
// with exactly config/rbac/role.yaml's rules: no token gets 401, the token of a ServiceAccount without
// the metrics-reader ClusterRole 403, one bound to config/rbac/metrics_reader_role.yaml 200.
func TestMetricsNeedATokenBoundToMetricsReader(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("..", "..", "bin", "k8s")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	admin, err := env.Start()
	if err != nil {
		t.Fatalf("envtest: %v (run `make envtest`)", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(admin)

	const ns = "metrics"
	must(t, create(ctx, cs, ns))
	for _, sa := range []string{"manager", "prometheus", "stranger"} {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		must(t, err)
	}
	bindClusterRole(t, cs, "../../config/rbac/role.yaml", ns, "manager")
	bindClusterRole(t, cs, "../../config/rbac/metrics_reader_role.yaml", ns, "prometheus")

	// The manager as its ServiceAccount: the filter's TokenReviews and SubjectAccessReviews must be
	// allowed by the manager's ClusterRole alone.
	asManager := rest.CopyConfig(admin)
	asManager.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":manager"}
	addr := freeAddr(t)
	mgr, err := ctrl.NewManager(asManager, ctrl.Options{Metrics: metricsOptions(addr, true), HealthProbeBindAddress: "0"})
	must(t, err)
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	url := "https://" + addr + "/metrics"
	// The certificate is self-signed; what is tested here is who may read, not the certificate.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	// Up once it answers at all.
	deadline := time.Now().Add(30 * time.Second)
	for code, _ := get(""); code == 0; code, _ = get("") {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never served on %s", url)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if code, body := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401 (%.200s)", code, body)
	}
	// controller-runtime's filter answers 500 when the TokenReview carries an error, as for a string
	// that is no token at all: anything but metrics will do.
	if code, body := get("not-a-token"); code == http.StatusOK {
		t.Errorf("a made-up token: status %d, want no metrics (%.200s)", code, body)
	}
	if code, body := get(token(t, cs, ns, "stranger")); code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without metrics-reader: status %d, want 403 (%.200s)", code, body)
	}
	code, body := get(token(t, cs, ns, "prometheus"))
	if code != http.StatusOK || !strings.Contains(body, "# TYPE") {
		t.Errorf("a ServiceAccount bound to metrics-reader: status %d, want 200 with metrics (%.200s)", code, body)
	}
	// Plain HTTP is not served beside it.
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain http:// served the metrics too")
		}
	}
}

// bindClusterRole creates the ClusterRole in file (as the kustomize build would, under its own name)
// and binds it to the ServiceAccount ns/sa.
func bindClusterRole(t *testing.T, cs kubernetes.Interface, file, ns, sa string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	must(t, err)
	role := &rbacv1.ClusterRole{}
	must(t, yaml.Unmarshal(raw, role))
	role.Name = "test-" + sa
	role.ResourceVersion = ""
	_, err = cs.RbacV1().ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{})
	must(t, err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(t.Context(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{})
	must(t, err)
}

// token mints a token of the ServiceAccount ns/sa (TokenRequest; envtest's API server signs them).
func token(t *testing.T, cs kubernetes.Interface, ns, sa string) string {
	t.Helper()
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	must(t, err)
	return tr.Status.Token
}

func create(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
