package gitops

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

const kindClusterApp, kindClusterSession = "ClusterThingSpaceApp", "ClusterM2MSession"

// A cluster-scoped credential and its consumers follow the same conventions: InProgress until the
// operator observed the spec, Current once Ready, and a consumer in a namespace the credential does
// not allow is Failed (NotAllowed) at once.
func TestKstatusClusterKinds(t *testing.T) {
	const platform, tenant, outsider = "gitops-platform", "gitops-tenant", "gitops-outsider"
	e := newEnv(t, tenant, platform, outsider)
	ctx := context.Background()
	must(t, cp.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: platform, Name: "fleet-credentials"},
		StringData: map[string]string{v1alpha1.CredentialsKeyKey: appKey, v1alpha1.CredentialsKeySecret: appSecret}}))

	e.halt()
	c := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "gitops-fleet"},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{Endpoint: e.simURL,
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "fleet-credentials"}, SecretName: "fleet-token"},
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{tenant}}}}
	must(t, cp.Client.Create(ctx, c))
	res, _ := e.compute(t, kindClusterApp, c.Name)
	wantResult(t, res, status.InProgressStatus, "LatestGenerationNotObserved")
	e.start(t)
	_, u := e.waitStatus(t, kindClusterApp, c.Name, status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")
	wantObserved(t, u)

	for _, ns := range []string{tenant, outsider} {
		must(t, cp.Client.Create(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
			Spec: v1alpha1.ThingSpaceAppSpec{ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: c.Name}, SecretName: "fleet-token"}}))
	}
	_, u = e.waitStatus(t, kindApp, tenant+"/fleet", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")
	_, u = e.waitStatus(t, kindApp, outsider+"/fleet", status.FailedStatus)
	wantConditions(t, u, "Ready=False/NotAllowed", "Stalled=True/NotAllowed")

	// A ClusterM2MSession on that app, and its consumers.
	must(t, cp.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: platform, Name: "uws-credentials"},
		StringData: map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword}}))
	cs := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: "gitops-uws"},
		Spec: v1alpha1.ClusterM2MSessionSpec{M2MSessionSpec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: c.Name},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws-credentials"}, SecretName: "uws-session"},
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{tenant}}}}
	must(t, cp.Client.Create(ctx, cs))
	_, u = e.waitStatus(t, kindClusterSession, cs.Name, status.CurrentStatus)
	wantConditions(t, u, "Ready=True/SessionValid")
	wantObserved(t, u)
	for _, ns := range []string{tenant, outsider} {
		must(t, cp.Client.Create(ctx, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uws"},
			Spec: v1alpha1.M2MSessionSpec{ClusterSessionRef: &v1alpha1.ClusterObjectReference{Name: cs.Name}, SecretName: "uws-session"}}))
	}
	_, u = e.waitStatus(t, kindSession, tenant+"/uws", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/SessionValid")
	_, u = e.waitStatus(t, kindSession, outsider+"/uws", status.FailedStatus)
	wantConditions(t, u, "Ready=False/NotAllowed", "Stalled=True/NotAllowed")

	// Right after a spec change, before the operator acted on it, then once it has.
	e.halt()
	specChange(t, e, &v1alpha1.ClusterThingSpaceApp{}, c.Name, func(o client.Object) { o.(*v1alpha1.ClusterThingSpaceApp).Spec.Scope = "m2m" })
	res, _ = e.compute(t, kindClusterApp, c.Name)
	wantResult(t, res, status.InProgressStatus, "LatestGenerationNotObserved")
	e.start(t)
	_, u = e.waitStatus(t, kindClusterApp, c.Name, status.CurrentStatus)
	wantObserved(t, u)
}
