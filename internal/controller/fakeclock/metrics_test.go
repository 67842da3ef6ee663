package fakeclock

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// gauge is the value of family{namespace=ns,name=name} in the manager's registry (0, false: none).
func gauge(t *testing.T, family, ns, name string) (float64, bool) {
	t.Helper()
	fams, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] == ns && l["name"] == name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// While a renewal fails, status.renewalTime moves to each retry slot, ahead of now; the renewal series
// keeps the planned renewal that failed, so the ThingSpaceCredentialExpiringWithoutRenewal rule can
// measure how far past it the token is. After the renewal succeeds it follows the status again.
func TestRenewalSeriesKeepsThePlanWhileRenewalsFail(t *testing.T) {
	const renewal = "thingspace_app_token_renewal_timestamp_seconds"
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	g := f.gated()
	f.appCreds()
	f.app("a", "creds", func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.Endpoint = g.url
		a.Spec.RenewBefore = &metav1.Duration{Duration: 10 * time.Minute}
	})
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	plan := f.tsApp("a").Status.RenewalTime.Time
	if v, ok := gauge(t, renewal, f.ns, "a"); !ok || v != float64(plan.Unix()) {
		t.Fatalf("renewal series %v (present %v), want the planned %v", v, ok, plan)
	}

	g.set("/api/ts/v1/oauth2/revoke", http.StatusServiceUnavailable)
	f.stepTo(plan.Add(time.Second))
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing)
	st := f.tsApp("a").Status
	if st.RenewalTime == nil || !st.RenewalTime.After(plan) || st.FailedRefreshAttempts == 0 {
		t.Fatalf("status after a failed renewal: renewalTime %v, %d failures: want a retry after the plan", st.RenewalTime, st.FailedRefreshAttempts)
	}
	if v, _ := gauge(t, renewal, f.ns, "a"); v != float64(plan.Unix()) {
		t.Errorf("renewal series while retrying = %v, want the failed plan %v (status says %v)", v, plan.Unix(), st.RenewalTime.Unix())
	}

	g.set("/api/ts/v1/oauth2/revoke", 0)
	f.stepTo(st.RenewalTime.Add(time.Second))
	f.eventually("the renewal to succeed", 10*time.Second, func() bool {
		a := f.tsApp("a")
		return a.Status.FailedRefreshAttempts == 0 && a.Status.RenewalTime != nil && a.Status.RenewalTime.After(st.RenewalTime.Time)
	})
	next := f.tsApp("a").Status.RenewalTime.Time
	if v, _ := gauge(t, renewal, f.ns, "a"); v != float64(next.Unix()) {
		t.Errorf("renewal series after the success = %v, want the new plan %v", v, next.Unix())
	}
}
