package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// An M2MSession whose appRef names a consumer of a ClusterThingSpaceApp logs in with the consumer's
// copy of the token, at the cluster app's endpoint, and asks for no token of its own; in a namespace
// the cluster app does not allow it says NotAllowed and logs in nowhere.
func TestSessionOnAConsumerApp(t *testing.T) {
	f := newFixture(t)
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	allowed, refused := f.tenant("in", nil), f.tenant("out", nil)
	c := f.clusterApp(&v1alpha1.AllowedNamespaces{Names: []string{allowed.ns}})
	for _, ns := range []*fixture{allowed, refused} {
		ns.consumer("app", c.Name)
		ns.uws("uws", uwsUser, uwsPassword)
		ns.session("s", "uws")
	}
	t.Cleanup(func() {
		for _, ns := range []*fixture{allowed, refused} {
			_ = k8s.DeleteAllOf(ctx, &v1alpha1.M2MSession{}, client.InNamespace(ns.ns))
		}
	})

	allowed.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 20*time.Second)
	tok, _, _ := allowed.token("app-token")
	if tok == "" || string(allowed.sessionData("s")[KeyAccessToken]) != tok {
		t.Fatal("the session's Secret does not carry the consumer's token")
	}
	s := refused.waitSession("s", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, 20*time.Second)
	if msg := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "does not allow namespace") {
		t.Fatalf("NotAllowed message %q", msg)
	}
	if n := f.logins(); n != 1 {
		t.Fatalf("%d logins, want 1 (the allowed namespace's)", n)
	}
	if n := f.tokenCalls(); n != 1 {
		t.Fatalf("%d token requests, want the cluster app's 1", n)
	}
}
