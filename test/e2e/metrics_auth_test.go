package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestMetricsNeedAuthentication runs a second manager binary as deployed (--metrics-secure's default:
// HTTPS behind TokenReview and SubjectAccessReview), watching only an empty namespace so that it acts
// on nothing of the suite's: no token is 401, a ServiceAccount without the metrics-reader rule 403,
// one bound to a ClusterRole with config/rbac/metrics_reader_role.yaml's rule 200 with the series.
func TestMetricsNeedAuthentication(t *testing.T) {
	ctx := t.Context()
	ns := newNamespace(t)
	for _, sa := range []string{"prometheus", "stranger"} {
		mustOK(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}))
	}
	reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: reader.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}}}
	for _, o := range []client.Object{reader, binding} {
		mustOK(t, k8s.Create(ctx, o))
	}
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, binding)
		_ = k8s.Delete(ctx, reader)
	})

	c := mgr.Config()
	c.CallbackAddr, c.LogPath = "", ""
	c.Args = []string{"--metrics-secure=true", "--watch-namespaces=" + ns + "-nothing-here"}
	second, err := c.Start(ctx)
	mustOK(t, err)
	t.Cleanup(func() { _ = second.Stop() })
	url := "https://" + strings.TrimPrefix(second.MetricsURL, "http://")

	cs := kubernetes.NewForConfigOrDie(cp.Config)
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		mustOK(t, err)
		return tr.Status.Token
	}
	// The certificate is the manager's self-signed one.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Ready probes come before the metrics server has its certificate and listens.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never served on %s: %v\nmanager log: %s", url, err, second.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401 (%.200s)", code, body)
	}
	if code, body := get(token("stranger")); code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without metrics-reader: %d, want 403 (%.200s)", code, body)
	}
	if code, body := get(token("prometheus")); code != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
		t.Errorf("a ServiceAccount with metrics-reader: %d, want 200 with the series (%.200s)", code, body)
	}
	if resp, err := http.Get(second.MetricsURL); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the secure manager also serves plain HTTP")
		}
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
