package credentials

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credops/thingspace-operator/test/harness"
)

// TestSecretSourceWithResourceNamesRole runs the SecretSource on a real API server as a user whose only
// permission is the Role the package documents: get and watch on one Secret by resourceNames.
func TestSecretSourceWithResourceNamesRole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := harness.StartControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()

	const ns, name = "default", "fleet-session"
	exp := time.Now().Add(time.Hour)
	sec := secretObject("", sessionSecret("bearer-0", "session-0", exp))
	sec.Namespace = ns
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workload"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get", "watch"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workload"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "workload"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "workload"}}}
	for _, o := range []client.Object{sec, other, role, binding} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	user, err := cp.Env.AddUser(envtest.User{Name: "workload"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(user.Config())
	if err != nil {
		t.Fatal(err)
	}

	// The Role is as narrow as documented: no list, no other Secret, no unfiltered watch.
	secrets := cs.CoreV1().Secrets(ns)
	if _, err := secrets.List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list: %v, want Forbidden", err)
	}
	if _, err := secrets.Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("get other: %v, want Forbidden", err)
	}
	if _, err := secrets.Watch(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("unfiltered watch: %v, want Forbidden", err)
	}

	s, err := NewSecretSource(ctx, cs, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	c, err := s.Current(ctx)
	if err != nil || c.AccessToken != "bearer-0" || c.SessionToken != "session-0" {
		t.Fatalf("first read: %v %v", c, err)
	}
	// Rotations arrive through the watch, both headers of one write together.
	var worst time.Duration
	for i := 1; i <= 5; i++ {
		cur := &corev1.Secret{}
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cur); err != nil {
			t.Fatal(err)
		}
		cur.Data = secretObject("", sessionSecret(fmt.Sprintf("bearer-%d", i), fmt.Sprintf("session-%d", i), exp)).Data
		start := time.Now()
		if err := cp.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		c = waitFor(t, s, c.Version)
		worst = max(worst, time.Since(start))
		if c.AccessToken != fmt.Sprintf("bearer-%d", i) || c.SessionToken != fmt.Sprintf("session-%d", i) {
			t.Fatalf("rotation %d: %v", i, c)
		}
	}
	t.Logf("5 rotations seen through the watch; slowest %v after the write", worst.Round(time.Millisecond))
	// A Role without watch is not enough: the watch is refused.
	if err := cp.Client.Patch(ctx, &rbacv1.Role{ObjectMeta: role.ObjectMeta, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get"}}}},
		client.MergeFrom(role)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if apierrors.IsForbidden(err) {
			break
		}
		if err == nil {
			w.Stop()
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch without the watch verb: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // RBAC changes reach the authorizer through its informer
	}
}
