//go:build node

package node

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// simImage is the simulator's own image, as `make image` loads it.
var simImage = envOr("NODE_SIM_IMAGE", "thingspace-sim:dev")

// TestSimulatorImage runs config/sim (the demo deployment's simulator) from its own image: it becomes
// Ready (its /healthz probe) under the restricted securityContext, and issues a token for the demo app.
func TestSimulatorImage(t *testing.T) {
	const ns = "thingspace-sim-demo"
	must(t, client.IgnoreAlreadyExists(k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})))
	kustomizeApply(t, "config/sim", ns, "thingspace-sim", simImage, `- target: {kind: Deployment, name: thingspace-sim}
  patch: |-
    - {op: add, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
`)
	d := &appsv1.Deployment{}
	waitRollout(t, ns, "thingspace-sim", 1)
	must(t, k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "thingspace-sim"}, d))
	pods := &corev1.PodList{}
	must(t, k8s.List(t.Context(), pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)))
	if len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("want one simulator pod with an address, got %d", len(pods.Items))
	}
	status, err := demoToken(t.Context(), "http://"+hostPort(pods.Items[0].Status.PodIP, 8088))
	if err != nil || status != http.StatusOK {
		t.Fatalf("token request to the simulator pod: status %d, %v", status, err)
	}
	must(t, k8s.Delete(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
}

// demoToken asks base for a token of the demo app (config/sim's public demo-key:demo-secret).
func demoToken(ctx context.Context, base string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/ts/v1/oauth2/token", strings.NewReader(form))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("demo-key:demo-secret")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
