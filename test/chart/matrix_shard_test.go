package chart

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// shardCases cover a release that is one shard of several (README "Sharding"): its selector, its own
// Lease, and the holder registry in a namespace the shards share.
var shardCases = []matrixCase{
	{"shard", m{"watchLabelSelector": "shard in (a,b)", "leaderElection": m{"id": "shard-a.thingspace-operator.credops.io"},
		"holderRegistryNamespace": "tsop-shared", "crds": m{"enabled": false}}, func(t *testing.T, objs objects) {
		_, ctr := deployment(t, objs)
		for _, want := range []string{"--watch-label-selector=shard in (a,b)", "--leader-election-id=shard-a.thingspace-operator.credops.io",
			"--holder-registry-namespace=tsop-shared"} {
			if !slices.Contains(ctr.Args, want) {
				t.Errorf("args %v lack %q", ctr.Args, want)
			}
		}
		// The registry's Leases: the leader-election rules, bound to the manager, in the shared namespace.
		var want rbacv1.Role
		readYAML(t, repoPath(t, "config/rbac/leader_election_role.yaml"), &want)
		var r rbacv1.Role
		into(t, objs.must(t, "Role", fullname+"-holder-registry"), &r)
		if r.Namespace != "tsop-shared" || !reflect.DeepEqual(r.Rules, want.Rules) {
			t.Errorf("holder registry Role %s/%s rules %+v, want the leader-election rules in tsop-shared", r.Namespace, r.Name, r.Rules)
		}
		var rb rbacv1.RoleBinding
		into(t, objs.must(t, "RoleBinding", fullname+"-holder-registry"), &rb)
		if rb.Namespace != "tsop-shared" || rb.RoleRef.Name != r.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != fullname || rb.Subjects[0].Namespace != namespace {
			t.Errorf("holder registry RoleBinding: %+v", rb)
		}
		absent(t, objs, "CustomResourceDefinition") // a second release leaves the CRDs to the first
		if err := apiServer(t).Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tsop-shared"}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}},
}

// A release with a selector but the default Lease would share it with the other shards (only one of
// them would run at a time): the chart refuses it; the default release renders no sharding flag.
func TestShardNeedsItsOwnLease(t *testing.T) {
	out, err := template(t, m{"watchLabelSelector": "shard=a"})
	if err == nil || !strings.Contains(string(out)+err.Error(), "leaderElection.id") {
		t.Errorf("a selector without leaderElection.id rendered (err %v):\n%.300s", err, out)
	}
	_, ctr := deployment(t, render(t, m{}))
	for _, a := range ctr.Args {
		for _, flag := range []string{"--watch-label-selector", "--leader-election-id", "--holder-registry-namespace"} {
			if strings.HasPrefix(a, flag) {
				t.Errorf("default values render %s", a)
			}
		}
	}
	if objs := render(t, m{}); objs.get("Role", fullname+"-holder-registry") != nil {
		t.Error("default values render a holder registry Role (the leader-election Role covers the release namespace)")
	}
	if objs := render(t, m{"holderRegistryNamespace": namespace}); objs.get("Role", fullname+"-holder-registry") != nil {
		t.Error("holderRegistryNamespace = the release namespace renders a second Role for it")
	}
}
