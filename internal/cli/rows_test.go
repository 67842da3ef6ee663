package cli

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func cond(typ string, s metav1.ConditionStatus, reason, msg string, ago time.Duration) metav1.Condition {
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, LastTransitionTime: mt(-ago)}
}

func TestLastFailure(t *testing.T) {
	lf := mt(-time.Minute)
	for _, tc := range []struct {
		name  string
		conds []metav1.Condition
		rs    *v1alpha1.RefreshStatus
		want  *Failure
	}{
		{"healthy", []metav1.Condition{cond("Ready", "True", "TokenValid", "ok", time.Hour)}, &v1alpha1.RefreshStatus{}, nil},
		{"pending is waiting, not failing", []metav1.Condition{cond("Ready", "False", "Pending", "none yet", time.Minute)}, nil, nil},
		{"awaiting consent", []metav1.Condition{
			cond("Authorized", "False", "AuthorizationPending", "open the link", time.Minute),
			cond("Ready", "False", "AuthorizationPending", "open the link", time.Minute)}, nil, nil},
		{"unknown is not a failure", []metav1.Condition{cond("Ready", "Unknown", "Reconciling", "", time.Minute)}, nil, nil},
		{"ready false", []metav1.Condition{cond("Ready", "False", "CredentialsRejected", "401", 10*time.Minute)}, nil,
			&Failure{Reason: "CredentialsRejected", Message: "401", At: at(-10 * time.Minute)}},
		{"latest of two", []metav1.Condition{
			cond("Authorized", "False", "ReauthorizationRequired", "refused", 2*time.Minute),
			cond("Ready", "False", "UpstreamUnavailable", "503", 5*time.Minute)}, nil,
			&Failure{Reason: "ReauthorizationRequired", Message: "refused", At: at(-2 * time.Minute)}},
		{"stalled true counts, reconciling never", []metav1.Condition{
			cond("Reconciling", "False", "Done", "", time.Second),
			cond("Stalled", "True", "CredentialsRejected", "401", 3*time.Minute)}, nil,
			&Failure{Reason: "CredentialsRejected", Message: "401", At: at(-3 * time.Minute)}},
		{"stalled false is fine", []metav1.Condition{cond("Stalled", "False", "Fine", "", time.Second)}, nil, nil},
		{"ready false dated by the newest failed attempt", []metav1.Condition{cond("Ready", "False", "UpstreamUnavailable", "503", time.Hour)},
			&v1alpha1.RefreshStatus{FailedRefreshAttempts: 4, LastFailureTime: &lf},
			&Failure{Reason: "UpstreamUnavailable", Message: "503", At: at(-time.Minute)}},
		{"ready true while refreshes fail", []metav1.Condition{cond("Ready", "True", "RefreshFailing", "retry at 14:05", time.Hour)},
			&v1alpha1.RefreshStatus{FailedRefreshAttempts: 2, LastFailureTime: &lf},
			&Failure{Reason: "RefreshFailing", Message: "retry at 14:05", At: at(-time.Minute)}},
		{"failed attempts without a condition saying so", []metav1.Condition{cond("Ready", "True", "TokenValid", "", time.Hour)},
			&v1alpha1.RefreshStatus{FailedRefreshAttempts: 3, LastFailureTime: &lf},
			&Failure{Reason: "RefreshFailed", Message: "3 consecutive failed refresh(es)", At: at(-time.Minute)}},
		{"old failure time without attempts is history", []metav1.Condition{cond("Ready", "True", "TokenValid", "", time.Hour)},
			&v1alpha1.RefreshStatus{LastFailureTime: &lf}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lastFailure(tc.conds, tc.rs)
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("lastFailure = %+v, want %+v", got, tc.want)
			}
			if got == nil {
				return
			}
			if got.Reason != tc.want.Reason || got.Message != tc.want.Message || !got.At.Equal(*tc.want.At) {
				t.Errorf("lastFailure = %+v at %v, want %+v at %v", got, got.At, tc.want, tc.want.At)
			}
		})
	}
}

func TestRowOf(t *testing.T) {
	exp, ren, ka := mt(time.Hour), mt(40*time.Minute), mt(10*time.Minute)
	app := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "a"}}
	app.Status.ExpiresAt, app.Status.RenewalTime, app.Status.ObservedRefreshRequest = &exp, &ren, "r1"
	app.Status.Conditions = []metav1.Condition{cond("Ready", "True", "TokenValid", "valid", time.Minute)}
	m2m := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "m"}}
	m2m.Status.NextKeepAliveTime, m2m.Status.ObservedRefreshRequest = &ka, "r2"
	ca := &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "c"}}
	ca.Status.RenewalTime = &ren

	r, ok := RowOf(app)
	if !ok || r.Kind != "ThingSpaceApp" || r.Ready != "True" || !r.ExpiresAt.Equal(exp.Time) || !r.NextRenewal.Equal(ren.Time) || r.observedRefresh != "r1" {
		t.Errorf("app row = %+v", r)
	}
	r, ok = RowOf(m2m)
	if !ok || r.Kind != "M2MSession" || r.Ready != "" || r.ExpiresAt != nil || !r.NextRenewal.Equal(ka.Time) || r.observedRefresh != "r2" {
		t.Errorf("m2m row = %+v", r)
	}
	r, ok = RowOf(ca)
	if !ok || r.Kind != "CloudAuthorization" || r.ExpiresAt != nil || !r.NextRenewal.Equal(ren.Time) {
		t.Errorf("cloud row = %+v", r)
	}
	if _, ok := RowOf(&metav1.PartialObjectMetadata{}); ok {
		t.Error("a foreign object made a row")
	}
}

func TestSortRows(t *testing.T) {
	rows := []Row{{Kind: "CloudAuthorization", Namespace: "a", Name: "z"}, {Kind: "ThingSpaceApp", Namespace: "b", Name: "a"},
		{Kind: "M2MSession", Namespace: "a", Name: "b"}, {Kind: "ThingSpaceApp", Namespace: "a", Name: "y"}, {Kind: "ThingSpaceApp", Namespace: "a", Name: "x"}}
	sortRows(rows)
	var got []string
	for _, r := range rows {
		got = append(got, r.Namespace+"/"+r.Kind+"/"+r.Name)
	}
	want := []string{"a/ThingSpaceApp/x", "a/ThingSpaceApp/y", "a/M2MSession/b", "a/CloudAuthorization/z", "b/ThingSpaceApp/a"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order = %v, want %v", got, want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, kind, name string }{
		{"thingspaceapp/a", "ThingSpaceApp", "a"}, {"TSApp/a", "ThingSpaceApp", "a"}, {"thingspaceapps/a", "ThingSpaceApp", "a"},
		{"ThingSpaceApp.thingspace.credops.io/a", "ThingSpaceApp", "a"},
		{"m2msession/s", "M2MSession", "s"}, {"M2M/s", "M2MSession", "s"},
		{"cloudauthorization/c", "CloudAuthorization", "c"}, {"CloudAuth/c", "CloudAuthorization", "c"},
		{"ctsapp/p", "ClusterThingSpaceApp", "p"}, {"clusterthingspaceapps/p", "ClusterThingSpaceApp", "p"},
		{"cm2m/p", "ClusterM2MSession", "p"}, {"ClusterM2MSession/p", "ClusterM2MSession", "p"},
	} {
		k, name, err := parseTarget(tc.in)
		if err != nil || k.Name != tc.kind || name != tc.name {
			t.Errorf("parseTarget(%q) = %s, %q, %v; want %s, %q", tc.in, k.Name, name, err, tc.kind, tc.name)
		}
	}
	for _, in := range []string{"", "tsapp", "tsapp/", "/a", "secret/a", "tsapp/a/b", "pods/a"} {
		if _, _, err := parseTarget(in); err == nil {
			t.Errorf("parseTarget(%q) accepted", in)
		}
	}
}
