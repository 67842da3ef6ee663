package controller

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// One ClusterThingSpaceApp, consumers in three namespaces: two allowed (by name, by label) get its one
// token, the third gets NotAllowed and no Secret; relabelling moves a namespace in and out, a deleted
// consumer stops counting, and a rotation reaches every allowed consumer with one token request.
func TestClusterAppServesAllowedNamespacesWithOneToken(t *testing.T) {
	f := newFixture(t)
	iot := map[string]string{"team": "iot"}
	named, labelled, other := f.tenant("a", nil), f.tenant("b", iot), f.tenant("c", map[string]string{"team": "web"})
	c := f.clusterApp(&v1alpha1.AllowedNamespaces{Names: []string{named.ns}, Selector: &metav1.LabelSelector{MatchLabels: iot}})
	for _, ns := range []*fixture{named, labelled, other} {
		ns.consumer("app", c.Name)
	}

	c = f.waitCluster(c.Name, 10*time.Second, "Ready with 2 consumers and 1 refused", func(c *v1alpha1.ClusterThingSpaceApp) bool {
		return clusterReady(c) && counts(2, 1)(c)
	})
	tok := clusterToken(c)
	if tok == "" {
		t.Fatal("the ClusterThingSpaceApp's Secret holds no token")
	}
	for _, ns := range []*fixture{named, labelled} {
		a := ns.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
		ns.waitTokenIs("app-token", tok, 5*time.Second)
		s := &corev1.Secret{}
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns.ns, Name: "app-token"}, s))
		// Owned by the consumer (garbage collection removes it with the consumer; envtest has none).
		if ref := metav1.GetControllerOf(s); ref == nil || ref.Kind != "ThingSpaceApp" || ref.UID != a.UID {
			t.Fatalf("%s: Secret controller %+v, want the consumer", ns.ns, ref)
		}
		if s.Labels["team"] != "iot" || s.Annotations[v1alpha1.ProvenanceAnnotation] == "" {
			t.Fatalf("%s: template or provenance missing: labels %v annotations %v", ns.ns, s.Labels, s.Annotations)
		}
		if a.Status.ExpiresAt == nil || c.Status.ExpiresAt == nil || !a.Status.ExpiresAt.Equal(c.Status.ExpiresAt) {
			t.Fatalf("%s: expiresAt %v, the cluster app's %v", ns.ns, a.Status.ExpiresAt, c.Status.ExpiresAt)
		}
	}
	refused := other.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, 10*time.Second)
	if msg := meta.FindStatusCondition(refused.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, `does not allow namespace "`+other.ns+`"`) {
		t.Fatalf("NotAllowed message %q", msg)
	}
	if _, _, ok := other.token("app-token"); ok {
		t.Fatal("a namespace not allowed got a Secret")
	}
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("%d token requests for three consumers, want 1", n)
	}

	// The labelled namespace loses its label: NotAllowed, its Secret deleted. The other one gains it.
	labelled.relabel(nil)
	labelled.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, 10*time.Second)
	labelled.waitTokenIs("app-token", "", 5*time.Second)
	other.relabel(iot)
	other.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	other.waitTokenIs("app-token", tok, 5*time.Second)
	settled := f.waitCluster(c.Name, 10*time.Second, "counting 2 consumers and 1 refused after relabelling", counts(2, 1))
	// A relabelling that changes no admission wakes the cluster app, which writes nothing.
	named.relabel(map[string]string{"unrelated": "label"})
	time.Sleep(time.Second)
	if rv := f.getCluster(c.Name).ResourceVersion; rv != settled.ResourceVersion {
		t.Fatalf("the cluster app's status was written (resourceVersion %s -> %s) though nothing changed", settled.ResourceVersion, rv)
	}

	// A consumer deleted stops counting.
	must(t, k8s.Delete(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: labelled.ns, Name: "app"}}))
	f.waitCluster(c.Name, 10*time.Second, "counting 2 consumers and none refused", counts(2, 0))

	// A rotation (a refresh requested on the cluster app) reaches every consumer: one more request.
	c = f.getCluster(c.Name)
	patch := client.MergeFrom(c.DeepCopy())
	c.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "now"}
	must(t, k8s.Patch(ctx, c, patch))
	c = f.waitCluster(c.Name, 10*time.Second, "rotated", func(c *v1alpha1.ClusterThingSpaceApp) bool {
		return c.Status.ObservedRefreshRequest == "now" && clusterReady(c)
	})
	rotated := clusterToken(c)
	if rotated == tok || rotated == "" {
		t.Fatal("the refresh request did not rotate the token")
	}
	named.waitTokenIs("app-token", rotated, 10*time.Second)
	other.waitTokenIs("app-token", rotated, 10*time.Second)
	if n := f.tokenCalls(); n != 2 {
		t.Fatalf("%d token requests after one rotation, want 2", n)
	}

	// The cluster app deleted: its consumers are not Ready, and keep the last token until it expires.
	must(t, k8s.Delete(ctx, c))
	named.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonAppNotReady, 10*time.Second)
	if got, _, _ := named.token("app-token"); got != rotated {
		t.Fatal("the consumer lost its token when the ClusterThingSpaceApp went")
	}
}

// A ClusterThingSpaceApp and a ThingSpaceApp of the same name in the cluster resource namespace are
// two objects: their Secrets, owners and broker holders do not collide.
func TestClusterAppAndNamespacedAppOfTheSameNameStayApart(t *testing.T) {
	f := newFixture(t)
	c := f.clusterApp(nil)
	home := *f
	home.ns = clusterNamespace
	home.app(c.Name, c.Spec.CredentialsSecretRef.Name, func(a *v1alpha1.ThingSpaceApp) { a.Spec.SecretName = c.Name + "-ns-token" })
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNamespace, Name: c.Name}})
	})
	f.waitCluster(c.Name, 10*time.Second, "Ready", clusterReady)
	home.waitReady(c.Name, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	// Same key: one token, shared through the broker.
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("%d token requests for two holders of one key, want 1", n)
	}
	cs := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: clusterNamespace, Name: c.Spec.SecretName}, cs))
	if ref := metav1.GetControllerOf(cs); ref == nil || ref.Kind != "ClusterThingSpaceApp" {
		t.Fatalf("cluster Secret controller %+v", ref)
	}
}

// revokeOnDelete on a ClusterThingSpaceApp: its consumers hold the token too, so deleting it while one
// exists revokes nothing (RevokeSkipped); without consumers it revokes.
func TestClusterAppRevokeOnDeleteSparesConsumers(t *testing.T) {
	f := newFixture(t)
	tenant := f.tenant("a", nil)
	revoking := func(c *v1alpha1.ClusterThingSpaceApp) { c.Spec.RevokeOnDelete = true }
	c := f.clusterApp(&v1alpha1.AllowedNamespaces{Names: []string{tenant.ns}}, revoking)
	tenant.consumer("app", c.Name)
	tenant.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	f.waitCluster(c.Name, 10*time.Second, "counting its consumer", counts(1, 0))
	// The cluster app's series under namespace "", the consumer's under its own.
	if got, _ := objectSeries(t, "", c.Name, f.secret); got["thingspace_app_ready_status{True}"] != 1 {
		t.Errorf("cluster app series %v: want Ready True under namespace \"\"", got)
	}
	if got, _ := objectSeries(t, tenant.ns, "app", f.secret); got["thingspace_app_ready_status{True}"] != 1 {
		t.Errorf("consumer series %v: want Ready True", got)
	}

	must(t, k8s.Delete(ctx, f.getCluster(c.Name)))
	f.eventually("the ClusterThingSpaceApp gone", 10*time.Second, func() bool {
		return isNotFound(k8s.Get(ctx, client.ObjectKey{Name: c.Name}, &v1alpha1.ClusterThingSpaceApp{}))
	})
	if n := f.revokeCalls(); n != 0 {
		t.Fatalf("%d revokes while a consumer holds the token, want 0", n)
	}
	f.eventually("the cluster app's series gone", 10*time.Second, func() bool {
		got, _ := objectSeries(t, "", c.Name, f.secret)
		return len(got) == 0
	})
	if evs := clusterEvents(t, c.Name, v1alpha1.EventRevokeSkipped); len(evs) == 0 || !strings.Contains(evs[0].Message, "still held by") {
		t.Fatalf("no RevokeSkipped event naming the holders: %+v", evs)
	}

	// The same again without consumers: revoked.
	g := newFixture(t)
	d := g.clusterApp(nil, revoking)
	g.waitCluster(d.Name, 10*time.Second, "Ready", clusterReady)
	must(t, k8s.Delete(ctx, g.getCluster(d.Name)))
	g.eventually("revoked", 10*time.Second, func() bool { return g.revokeCalls() == 1 })
}

// clusterEvents lists the events of reason on the cluster-scoped object name, wherever they landed.
func clusterEvents(t *testing.T, name, reason string) []corev1.Event {
	t.Helper()
	evs := &corev1.EventList{}
	must(t, k8s.List(ctx, evs))
	var out []corev1.Event
	for _, e := range evs.Items {
		if e.InvolvedObject.Kind == "ClusterThingSpaceApp" && e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}
