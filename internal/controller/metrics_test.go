package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// objectSeries is every thingspace_ series of ns/name in the manager's registry: family{condition} →
// value; and whether any label anywhere carries the text leak.
func objectSeries(t *testing.T, ns, name, leak string) (map[string]float64, bool) {
	t.Helper()
	fams, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	out, leaked := map[string]float64{}, false
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "thingspace_") {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
				leaked = leaked || strings.Contains(p.GetValue(), leak)
			}
			if l["namespace"] != ns || l["name"] != name {
				continue
			}
			key := f.GetName()
			if c, ok := l["condition"]; ok {
				key += "{" + c + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out, leaked
}

// The controllers export each object's series while it exists and delete every one of them when it
// goes; the refused login shows as the username's failures, under a hash, never the username.
func TestMetricsFollowTheObjects(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, "Wr0ng!Passw0rd")
	f.session("s", "uws")
	f.waitSession("s", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)

	app, leaked := objectSeries(t, f.ns, "app", uwsUser)
	if app["thingspace_app_ready_status{True}"] != 1 || app["thingspace_app_token_expiration_timestamp_seconds"] <= float64(time.Now().Unix()) ||
		app["thingspace_app_token_renewal_timestamp_seconds"] == 0 {
		t.Errorf("app series %v: want Ready True and a future expiry and a renewal", app)
	}
	sess, _ := objectSeries(t, f.ns, "s", uwsUser)
	if sess["thingspace_m2m_session_ready_status{False}"] != 1 || sess["thingspace_m2m_login_consecutive_failures"] < 1 {
		t.Errorf("session series %v: want Ready False and at least 1 login failure", sess)
	}
	if leaked {
		t.Errorf("a metric label carries the UWS username %q", uwsUser)
	}

	for _, obj := range []struct {
		name string
		del  func()
	}{
		{"s", func() {
			must(t, k8s.Delete(ctx, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "s"}}))
		}},
		{"app", func() {
			must(t, k8s.Delete(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "app"}}))
		}},
	} {
		obj.del()
		var left map[string]float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if left, _ = objectSeries(t, f.ns, obj.name, uwsUser); len(left) == 0 {
				break
			}
		}
		if len(left) != 0 {
			t.Errorf("%s deleted, its series stay: %v", obj.name, left)
		}
	}
}
