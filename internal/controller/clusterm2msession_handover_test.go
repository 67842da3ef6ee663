package controller

import (
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 11 §1 on the cluster kinds (the core is runSession's): a ClusterThingSpaceApp with a standby
// key set publishes another key's token while the old one stays valid (played here by pointing its
// credentials at the other key), and the ClusterM2MSession logs in once with it, on a platform that
// ties sessions to their token: its Secret and its consumers' copies change both headers together, and
// the old pair keeps working. The suite's leak check covers what the handover logs and records.
func TestClusterSessionHandover(t *testing.T) {
	f := newFixtureConfig(t, simulator.Config{TokenLifetime: time.Hour, M2MSessionTiedToBearer: true})
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	key2, secret2 := f.key+"-standby", f.secret+"-standby"
	f.sim.SetApp(key2, secret2)
	standby := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNamespace, Name: f.ns + "-standby"},
		Data: map[string][]byte{"key": []byte(key2), "secret": []byte(secret2)}}
	must(t, k8s.Create(ctx, standby))
	t.Cleanup(func() { _ = k8s.Delete(ctx, standby) })
	app := f.clusterApp(&v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}, func(c *v1alpha1.ClusterThingSpaceApp) {
		c.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: standby.Name}
	})
	f.waitCluster(app.Name, 10*time.Second, "Ready", clusterReady)
	cm := f.clusterSession(app.Name, &v1alpha1.AllowedNamespaces{Names: []string{f.ns}})
	f.sessionConsumer("s", cm.Name)
	f.waitClusterSession(cm.Name, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.waitConsumer("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid)

	pairOf := func(ns, name string) [2]string {
		s := secretIn(t, ns, name)
		if s == nil {
			return [2]string{}
		}
		return [2]string{string(s.Data[KeyAccessToken]), string(s.Data[KeySessionToken])}
	}
	works := func(p [2]string) bool {
		req, _ := http.NewRequest(http.MethodGet, f.url+"/api/m2m/v1/accounts/0000123456-00001", nil)
		req.Header.Set("Authorization", "Bearer "+p[0])
		req.Header.Set(simulator.M2MTokenHeader, p[1])
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	first := pairOf(clusterNamespace, cm.Spec.SecretName)
	if !works(first) {
		t.Fatal("the first pair does not work")
	}

	// The handover: the app's Secret gets the other key's token; the old one is not revoked.
	creds := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: clusterNamespace, Name: f.ns + "-creds"}, creds))
	creds.Data = standby.Data
	must(t, k8s.Update(ctx, creds))
	var second [2]string
	f.eventually("the cluster session on the new token", 10*time.Second, func() bool {
		tok := secretIn(t, clusterNamespace, app.Spec.SecretName)
		second = pairOf(clusterNamespace, cm.Spec.SecretName)
		return tok != nil && string(tok.Data[KeyAccessToken]) != first[0] && second[0] == string(tok.Data[KeyAccessToken])
	})
	if second[1] == first[1] || !works(second) || !works(first) {
		t.Fatalf("new session %v, new pair works %v, old pair works %v: want a new working pair and the old one kept",
			second[1] != first[1], works(second), works(first))
	}
	f.eventually("the consumer's copy of the new pair", 10*time.Second, func() bool { return pairOf(f.ns, "s-session") == second })
	// Keep-alives run every second meanwhile: no other login.
	time.Sleep(2 * time.Second)
	if info, _ := f.sim.M2MUser(uwsUser); info.Logins != 2 {
		t.Fatalf("%d logins, want 2 (one for the handover)", info.Logins)
	}
	got := &v1alpha1.ClusterM2MSession{}
	must(t, k8s.Get(ctx, client.ObjectKey{Name: cm.Name}, got))
	if got.Status.LoginTokenDigest != policy.TokenDigest(second[0]) || got.Status.LoginTokenExpiresAt == nil {
		t.Fatalf("status records login token %q (expires %v), want the new token's digest", got.Status.LoginTokenDigest, got.Status.LoginTokenExpiresAt)
	}
}
