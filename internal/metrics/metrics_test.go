package metrics

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var t0 = time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)

// seriesOf returns the thingspace_ series of the object ns/name as "family{condition}" → value.
func seriesOf(t *testing.T, ns, name string) map[string]float64 {
	t.Helper()
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), namespace+"_") {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["namespace"] != ns || l["name"] != name {
				continue
			}
			key := f.GetName()
			if c, ok := l["condition"]; ok {
				key += "{" + c + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.Unix()) }

func TestEveryKindsSeriesComeAndGoWithTheObject(t *testing.T) {
	exp, ren := t0.Add(time.Hour), t0.Add(50*time.Minute)
	st := State{Ready: metav1.ConditionTrue, Expires: exp, Renewal: ren}
	for _, tc := range []struct {
		kind   string
		set    func(ns, name string)
		forget func(ns, name string)
		want   map[string]float64
	}{
		{"ThingSpaceApp", func(ns, n string) { SetApp(ns, n, st) }, ForgetApp, map[string]float64{
			"thingspace_app_token_expiration_timestamp_seconds": unix(exp),
			"thingspace_app_token_renewal_timestamp_seconds":    unix(ren),
			"thingspace_app_ready_status{True}":                 1,
			"thingspace_app_ready_status{False}":                0,
			"thingspace_app_ready_status{Unknown}":              0,
		}},
		{"M2MSession", func(ns, n string) {
			SetSession(ns, n, Session{State: st, LastKeepAlive: t0})
			TrackLogins(ns, n, "https://ts\x00fleet-m2m", func() int { return 3 })
		}, ForgetSession, map[string]float64{
			"thingspace_m2m_session_expiration_timestamp_seconds":     unix(exp),
			"thingspace_m2m_session_renewal_timestamp_seconds":        unix(ren),
			"thingspace_m2m_session_last_keepalive_timestamp_seconds": unix(t0),
			"thingspace_m2m_login_consecutive_failures":               3,
			"thingspace_m2m_session_ready_status{True}":               1,
			"thingspace_m2m_session_ready_status{False}":              0,
			"thingspace_m2m_session_ready_status{Unknown}":            0,
		}},
		{"CloudAuthorization", func(ns, n string) {
			SetCloud(ns, n, Cloud{State: st, Authorized: true, RefreshTokenExpires: t0.Add(14 * 24 * time.Hour), KeepAliveDeadline: t0.Add(13 * 24 * time.Hour)})
		}, ForgetCloud, map[string]float64{
			"thingspace_cloud_token_expiration_timestamp_seconds":                 unix(exp),
			"thingspace_cloud_token_renewal_timestamp_seconds":                    unix(ren),
			"thingspace_cloud_authorized":                                         1,
			"thingspace_cloud_refresh_token_expiration_timestamp_seconds":         unix(t0.Add(14 * 24 * time.Hour)),
			"thingspace_cloud_refresh_token_keepalive_deadline_timestamp_seconds": unix(t0.Add(13 * 24 * time.Hour)),
			"thingspace_cloud_ready_status{True}":                                 1,
			"thingspace_cloud_ready_status{False}":                                0,
			"thingspace_cloud_ready_status{Unknown}":                              0,
		}},
	} {
		// A namespaced object and a cluster-scoped one (namespace "") of the same name.
		for _, ns := range []string{"ns", ""} {
			tc.set(ns, "obj")
			tc.set("other", "obj") // a neighbour whose series must survive
			got := seriesOf(t, ns, "obj")
			if len(got) != len(tc.want) {
				t.Errorf("%s %q: series %v, want %v", tc.kind, ns, got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s %q: %s = %v, want %v", tc.kind, ns, k, got[k], v)
				}
			}
			tc.forget(ns, "obj")
			if left := seriesOf(t, ns, "obj"); len(left) != 0 {
				t.Errorf("%s %q: series left after forget: %v", tc.kind, ns, left)
			}
			if n := len(seriesOf(t, "other", "obj")); n != len(tc.want) {
				t.Errorf("%s: forgetting %q/obj took %d of other/obj's series with it", tc.kind, ns, len(tc.want)-n)
			}
			tc.forget("other", "obj")
		}
	}
}

func TestReadyStatusIsOneHotAndUnknownWithoutACondition(t *testing.T) {
	defer ForgetApp("ns", "r")
	for _, tc := range []struct {
		ready metav1.ConditionStatus
		want  string
	}{{"", "Unknown"}, {metav1.ConditionFalse, "False"}, {metav1.ConditionTrue, "True"}, {metav1.ConditionUnknown, "Unknown"}} {
		SetApp("ns", "r", State{Ready: tc.ready})
		got := seriesOf(t, "ns", "r")
		for _, c := range []string{"True", "False", "Unknown"} {
			want := 0.0
			if c == tc.want {
				want = 1
			}
			if v, ok := got["thingspace_app_ready_status{"+c+"}"]; !ok || v != want {
				t.Errorf("Ready %q: condition %s = %v (present %v), want %v", tc.ready, c, v, ok, want)
			}
		}
		if _, ok := got["thingspace_app_token_expiration_timestamp_seconds"]; ok {
			t.Errorf("Ready %q: a zero expiry must leave its series out", tc.ready)
		}
	}
}

// While refreshes fail, status.renewalTime is the next retry, which moves ahead of now: the renewal
// series keeps the planned renewal that failed, so "past the renewal" stays measurable.
func TestRenewalKeepsThePlanWhileRetrying(t *testing.T) {
	defer ForgetApp("ns", "retry")
	renewal := func() float64 {
		v, _ := app.renewal.value("ns", "retry")
		return v
	}
	plan := t0.Add(50 * time.Minute)
	SetApp("ns", "retry", State{Ready: metav1.ConditionTrue, Expires: t0.Add(time.Hour), Renewal: plan})
	SetApp("ns", "retry", State{Ready: metav1.ConditionTrue, Expires: t0.Add(time.Hour), Renewal: plan.Add(30 * time.Second), Retrying: true})
	SetApp("ns", "retry", State{Ready: metav1.ConditionTrue, Expires: t0.Add(time.Hour), Renewal: plan.Add(90 * time.Second), Retrying: true})
	if v := renewal(); v != unix(plan) {
		t.Fatalf("renewal while retrying = %v, want the plan %v", v, unix(plan))
	}
	next := t0.Add(110 * time.Minute)
	SetApp("ns", "retry", State{Ready: metav1.ConditionTrue, Expires: t0.Add(2 * time.Hour), Renewal: next})
	if v := renewal(); v != unix(next) {
		t.Fatalf("renewal after the success = %v, want %v", v, unix(next))
	}
	// A process that never saw the plan (restarted mid-failure) has only the retry slot.
	ForgetApp("ns", "retry")
	SetApp("ns", "retry", State{Expires: t0.Add(time.Hour), Renewal: plan.Add(time.Minute), Retrying: true})
	if v := renewal(); v != unix(plan.Add(time.Minute)) {
		t.Fatalf("renewal without a known plan = %v, want the retry slot", v)
	}
}

// The login failures are read live from their source at each scrape, and the username never shows: not
// as a label, not unkeyed-hashed.
func TestLoginFailuresAreLiveAndNeverNameTheUsername(t *testing.T) {
	defer ForgetSession("ns", "a")
	defer ForgetSession("ns", "b")
	const username = "fleet-m2m"
	key := "https://thingspace.verizon.com\x00" + username
	n := 1
	TrackLogins("ns", "a", key, func() int { return n })
	TrackLogins("ns", "b", key, func() int { return n })
	n = 2
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]bool{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), username) {
					t.Errorf("%s carries the username in %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
			if f.GetName() == "thingspace_m2m_login_consecutive_failures" {
				if v := value(m); v != 2 {
					t.Errorf("failures = %v, want the source's current 2", v)
				}
				hashes[labels(m)["username_hash"]] = true
			}
		}
	}
	if len(hashes) != 1 {
		t.Fatalf("two sessions of one username have hashes %v, want one", hashes)
	}
	for h := range hashes {
		if len(h) != 12 || h == logins.hash("https://thingspace.verizon.com\x00other") {
			t.Errorf("username_hash %q: want 12 hex digits, distinct per username", h)
		}
		other := newLoginFailures() // another process: another key
		if h == other.hash(key) {
			t.Errorf("username_hash %q is the same under another key: not keyed", h)
		}
	}
}

func TestObserverCountsByEndpointAndCode(t *testing.T) {
	obs := Observer("thingspace")
	obs("token", "200")
	obs("token", "200")
	obs("token", "503")
	if v := testutil.ToFloat64(UpstreamRequests.WithLabelValues("thingspace", "token", "200")); v != 2 {
		t.Fatalf("token 200 = %v", v)
	}
	if v := testutil.ToFloat64(UpstreamRequests.WithLabelValues("thingspace", "token", "503")); v != 1 {
		t.Fatalf("token 503 = %v", v)
	}
}

var _ prometheus.Collector = (*loginFailures)(nil)

// Per-object series cost a map entry per family, not a GaugeVec child per series: make bench's heap
// profile showed 1.7 KiB an object with GaugeVecs (17 MiB at 10,000 ThingSpaceApps).
func TestPerObjectSeriesCostUnder600BytesAnObject(t *testing.T) {
	const n = 5000
	names := make([]string, n)
	for i := range names {
		names[i] = "app-" + strconv.Itoa(i)
	}
	defer func() {
		for _, name := range names {
			ForgetApp("heap", name)
		}
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, name := range names {
		SetApp("heap", name, State{Ready: metav1.ConditionTrue, Expires: t0.Add(time.Hour), Renewal: t0.Add(40 * time.Minute)})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perObject := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d bytes an object (5 series)", perObject)
	if perObject > 600 {
		t.Errorf("%d bytes an object for its 5 series, want under 600", perObject)
	}
	if got := seriesOf(t, "heap", names[n-1]); len(got) != 5 {
		t.Errorf("series of one object: %v", got)
	}
}
