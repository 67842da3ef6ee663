package controller

import (
	"testing"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A Bearer the gateway refuses is replaced with the key set that issued it: the standby one once the
// app handed over to it (status.activeKeySet), the primary otherwise. A ClusterThingSpaceApp's view
// carries its status, so the cluster kinds get the same answer.
func TestActiveCredentials(t *testing.T) {
	standby := &v1alpha1.LocalSecretReference{Name: "standby"}
	cases := []struct {
		name    string
		standby *v1alpha1.LocalSecretReference
		active  string
		want    string
	}{
		{"one key set", nil, "", "primary"},
		{"standby configured, primary active", standby, v1alpha1.KeySetPrimary, "primary"},
		{"standby configured, not yet reported", standby, "", "primary"},
		{"standby active", standby, v1alpha1.KeySetStandby, "standby"},
		{"standby reported active but since removed from the spec", nil, v1alpha1.KeySetStandby, "primary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := &v1alpha1.ThingSpaceApp{Spec: v1alpha1.ThingSpaceAppSpec{
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "primary"}, StandbyCredentialsSecretRef: tc.standby}}
			app.Status.ActiveKeySet = tc.active
			if got := activeCredentials(app); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			cluster := &v1alpha1.ClusterThingSpaceApp{}
			cluster.Spec.ThingSpaceAppSpec = app.Spec
			cluster.Status.ThingSpaceAppStatus = app.Status
			if got := activeCredentials(clusterAppView(cluster, "platform")); got != tc.want {
				t.Fatalf("cluster view: got %q, want %q", got, tc.want)
			}
		})
	}
}
