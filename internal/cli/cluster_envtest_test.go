package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A ClusterThingSpaceApp is listed by `status -A` (with no namespace), not in a namespace's table, and
// `refresh ctsapp/<name>` finds it whatever -n says.
func TestClusterKindsInStatusAndRefresh(t *testing.T) {
	ns := newNamespace(t, "cluster-status")
	name := ns + "-platform"
	c := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "platform-creds"}, SecretName: "platform-token"}},
		Status: v1alpha1.ClusterThingSpaceAppStatus{ThingSpaceAppStatus: v1alpha1.ThingSpaceAppStatus{
			Conditions:    []metav1.Condition{cond("Ready", "True", "TokenValid", "valid", time.Minute)},
			RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: ptr(mt(42 * time.Minute)), RenewalTime: ptr(mt(30 * time.Minute))}}}}
	create(t, c)
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), c) })
	create(t, newApp(ns, "tenant", nil, v1alpha1.ThingSpaceAppStatus{Conditions: []metav1.Condition{cond("Ready", "True", "TokenValid", "valid", time.Minute)}}))
	clk := testingclock.NewFakeClock(now)
	kc := kubeconfig(t, ns, "")

	got := run(t, clk, Env{}, "--kubeconfig", kc, "status", "-n", ns)
	if got.code != ExitOK || strings.Contains(got.out, "ClusterThingSpaceApp") || !strings.Contains(got.out, "tenant") {
		t.Errorf("namespace table: exit %d\n%s%s", got.code, got.out, got.err)
	}
	got = run(t, clk, Env{}, "--kubeconfig", kc, "status", "-A")
	var row string
	for _, l := range strings.Split(got.out, "\n") {
		if strings.Contains(l, name) {
			row = l
		}
	}
	if got.code != ExitOK || !strings.HasPrefix(row, "ClusterThingSpaceApp ") || !strings.Contains(row, "in 42m") ||
		strings.Fields(row)[1] != name {
		t.Errorf("-A: exit %d, row %q in\n%s%s", got.code, row, got.out, got.err)
	}

	got = run(t, clk, Env{}, "--kubeconfig", kc, "refresh", "-n", ns, "--wait=false", "ctsapp/"+name)
	if got.code != ExitOK || !strings.Contains(got.out, "ClusterThingSpaceApp "+name+": refresh requested") {
		t.Errorf("refresh: exit %d\n%s%s", got.code, got.out, got.err)
	}
	after := &v1alpha1.ClusterThingSpaceApp{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: name}, after); err != nil || after.Annotations[v1alpha1.RefreshRequestedAnnotation] == "" {
		t.Errorf("annotation not set: %v %v", err, after.Annotations)
	}
}
