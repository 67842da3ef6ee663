package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func TestAppSeriesComeAndGoWithTheObject(t *testing.T) {
	exp := time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)
	SetApp("ns", "a", true, exp, exp.Add(-time.Minute))
	if v := testutil.ToFloat64(appExpiry.WithLabelValues("ns", "a")); v != float64(exp.Unix()) {
		t.Fatalf("expiry = %v", v)
	}
	if v := testutil.ToFloat64(appReady.WithLabelValues("ns", "a")); v != 1 {
		t.Fatalf("ready = %v", v)
	}
	ForgetApp("ns", "a")
	for _, name := range []string{"thingspace_app_token_expiration_timestamp_seconds", "thingspace_app_ready", "thingspace_app_token_renewal_timestamp_seconds"} {
		if n, err := testutil.GatherAndCount(registryOf(), name); err != nil || n != 0 {
			t.Fatalf("%s series left after ForgetApp: %d (%v)", name, n, err)
		}
	}
	SetSession("ns", "s", false)
	ForgetSession("ns", "s")
	if n, _ := testutil.GatherAndCount(registryOf(), "thingspace_m2m_session_ready"); n != 0 {
		t.Fatalf("session series left: %d", n)
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

func registryOf() prometheus.Gatherer { return ctrlmetrics.Registry }
