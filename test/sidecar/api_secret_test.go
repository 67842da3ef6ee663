package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/internal/proxy"
	"github.com/credops/thingspace-operator/test/harness"
)

const ns = "fleet"

// objects decodes one examples/sidecar file.
func objects(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	root, err := harness.RepoRoot()
	must(t, err)
	b, err := os.ReadFile(filepath.Join(root, "examples", "sidecar", name))
	must(t, err)
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		u := &unstructured.Unstructured{}
		must(t, utilyaml.Unmarshal(doc, &u.Object))
		if u.Object != nil {
			out = append(out, u)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// impersonating writes a kubeconfig of the control plane's admin acting as user.
func impersonating(t *testing.T, cp *harness.ControlPlane, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cp.KubeconfigPath)
	must(t, err)
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

func sessionSecret(tok, sess string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet-session"},
		StringData: map[string]string{
			"access_token": tok, "session_token": sess,
			"access_token_expires_at": time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		},
	}
}

func TestExampleRoleServesTheSecretSourceAndNothingElse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := harness.StartControlPlane(ctx)
	must(t, err)
	defer func() { _ = cp.Stop() }()
	c := cp.Client
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))

	// The pods pass the API server's validation (native sidecar, probes, projected token); the
	// ServiceAccount, Role and RoleBinding are created for real.
	for _, file := range []string{"pod-mounted-secret.yaml", "pod-api-secret.yaml"} {
		for _, u := range objects(t, file) {
			u.SetNamespace(ns)
			var opts []client.CreateOption
			if u.GetKind() == "Pod" {
				opts = append(opts, client.DryRunAll)
			}
			if err := c.Create(ctx, u, opts...); err != nil {
				t.Fatalf("%s: %s %s: %v", file, u.GetKind(), u.GetName(), err)
			}
		}
	}
	must(t, c.Create(ctx, sessionSecret("tok-app-1", "tok-session-1")))
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}, StringData: map[string]string{"k": "v"}}))

	kubeconfig := impersonating(t, cp, "system:serviceaccount:"+ns+":fleet-worker")
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	must(t, err)
	sa, err := kubernetes.NewForConfig(rc)
	must(t, err)
	if _, err := sa.CoreV1().Secrets(ns).Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the ServiceAccount reads another Secret: %v", err)
	}
	if _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the ServiceAccount lists every Secret: %v", err)
	}

	seen := make(chan string, 10)
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization") + " " + r.Header.Get("VZ-M2M-Token")
	}))
	defer up.Close()
	cfg, err := proxy.ParseFlags([]string{"--secret=" + ns + "/fleet-session", "--kubeconfig=" + kubeconfig,
		"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", "--upstream=" + up.URL, "--allow-insecure-upstream"}, io.Discard)
	must(t, err)
	var logs harness.LogBuffer
	s, err := proxy.Start(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	must(t, err)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	call := func() string {
		resp, err := http.Get(fmt.Sprintf("http://%s/api/m2m/v1/accounts/0000123456-00001", s.ProxyAddr))
		must(t, err)
		_ = resp.Body.Close()
		return <-seen
	}
	waitReady(t, fmt.Sprintf("http://%s/readyz", s.HealthAddr))
	if got := call(); got != "Bearer tok-app-1 tok-session-1" {
		t.Errorf("upstream saw %q", got)
	}

	// An update through the API reaches the sidecar without any kubelet.
	sec := &corev1.Secret{}
	must(t, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet-session"}, sec))
	sec.StringData = sessionSecret("tok-app-2", "tok-session-2").StringData
	start := time.Now()
	must(t, c.Update(ctx, sec))
	for got := call(); got != "Bearer tok-app-2 tok-session-2"; got = call() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("after 10 s the upstream still sees %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the update reached the sidecar through the API in %v", time.Since(start).Round(time.Millisecond))
	for _, secret := range []string{"tok-app-1", "tok-app-2", "tok-session-1", "tok-session-2"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("%s not ready within 10 s", url)
}
