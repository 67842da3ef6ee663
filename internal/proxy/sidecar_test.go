package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// metric scrapes /metrics and returns the value of the series written exactly as series.
func metric(t *testing.T, healthURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(healthURL + "/metrics")
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			must(t, err)
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// noLeak fails if any secret value appears in the text.
func noLeak(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q", where, s)
		}
	}
}

// The mounted M2M Secret's two values are the only credential headers upstream, whatever the
// client sent.
func TestSidecarInjectsTheMountedCredential(t *testing.T) {
	type got struct{ auth, m2m string }
	seen := make(chan got, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- got{r.Header.Get("Authorization"), r.Header.Get("VZ-M2M-Token")}
	}))
	defer up.Close()
	vol := newVolume(t)
	vol.write(sessionData("tok-app-1", "tok-session-1", time.Now().Add(time.Hour)))
	var logs harness.LogBuffer
	px, health := startSidecar(t, &logs, "--credentials-dir="+vol.dir, "--upstream="+up.URL)

	req, _ := http.NewRequest(http.MethodGet, px+"/api/m2m/v1/accounts/0000123456-00001", nil)
	req.Header.Set("Authorization", "Bearer clients-own")
	req.Header.Set("VZ-M2M-Token", "clients-own-session")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	_ = resp.Body.Close()
	if g := <-seen; g != (got{"Bearer tok-app-1", "tok-session-1"}) {
		t.Errorf("upstream saw %+v, want the mounted Secret's values", g)
	}
	eventually(t, "the credential metrics", func() bool {
		return metric(t, health, "thingspace_proxy_credential_changes_total") == 1
	})
	if v := metric(t, health, `thingspace_proxy_requests_total{code="2xx",source="upstream"}`); v != 1 {
		t.Errorf("requests{2xx,upstream} = %v, want 1", v)
	}
	noLeak(t, "the log", logs.String(), "tok-app-1", "tok-session-1")
}

// A 900901 answer (the operator rotated; this token is dead) makes the library re-read the
// directory and send the request again, once, body included: the client sees only the success.
// When nothing newer comes, the client gets the upstream's 401 itself after one send.
func TestSidecarRetriesOnceOn900901(t *testing.T) {
	vol := newVolume(t)
	exp := time.Now().Add(time.Hour)
	vol.write(appData("tok-old", exp))
	var sends atomic.Int32
	var rotate atomic.Bool
	rotate.Store(true)
	var bodies sync.Map
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := sends.Add(1)
		b, _ := io.ReadAll(r.Body)
		bodies.Store(n, string(b))
		if r.Header.Get("Authorization") == "Bearer tok-new" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if rotate.Load() {
			vol.write(appData("tok-new", exp)) // the operator's rotation lands while the old token is refused
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"fault":{"code":"900901","message":"Invalid Credentials","description":"expired"}}`)
	}))
	defer up.Close()
	px, health := startSidecar(t, io.Discard, "--credentials-dir="+vol.dir, "--upstream="+up.URL, "--max-wait=300ms")

	resp, err := http.Post(px+"/api/m2m/v1/devices/actions/list", "application/json", strings.NewReader(`{"accountName":"a"}`))
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sends.Load() != 2 {
		t.Fatalf("status %d after %d sends, want 200 after 2", resp.StatusCode, sends.Load())
	}
	for _, n := range []int32{1, 2} {
		if b, _ := bodies.Load(n); b != `{"accountName":"a"}` {
			t.Errorf("send %d carried body %q", n, b)
		}
	}
	if v := metric(t, health, `thingspace_proxy_credential_rejections_total{reason="gateway_900901"}`); v != 1 {
		t.Errorf("rejections{gateway_900901} = %v, want 1", v)
	}
	if v := metric(t, health, "thingspace_proxy_retries_total"); v != 1 {
		t.Errorf("retries = %v, want 1", v)
	}

	// tok-new is now refused too and nothing newer comes: one send, the 401 passed through. (The
	// tracker is let see tok-new first: it counts the versions it sees, not every one written.)
	eventually(t, "tok-new to be held", func() bool {
		return metric(t, health, "thingspace_proxy_credential_changes_total") == 2
	})
	vol.write(appData("tok-dead", exp))
	eventually(t, "the dead token to be held", func() bool {
		return metric(t, health, "thingspace_proxy_credential_changes_total") == 3
	})
	rotate.Store(false)
	sends.Store(0)
	resp, err = http.Get(px + "/api/m2m/v1/x")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "900901") || sends.Load() != 1 {
		t.Errorf("without a newer credential: %d %q after %d sends, want the upstream's 401 after 1", resp.StatusCode, b, sends.Load())
	}
	if v := metric(t, health, `thingspace_proxy_credential_waits_total{outcome="timeout"}`); v != 1 {
		t.Errorf("waits{timeout} = %v, want 1", v)
	}
}

// Ready only while a credential that has not expired is held; requests meanwhile get the proxy's
// 503 and never reach the upstream.
func TestSidecarReadiness(t *testing.T) {
	var sends atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { sends.Add(1) }))
	defer up.Close()
	vol := newVolume(t) // an empty volume: the Secret is not written yet
	px, health := startSidecar(t, io.Discard, "--credentials-dir="+vol.dir, "--upstream="+up.URL, "--max-wait=50ms")

	if code := status(t, health+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with no Secret: %d, want 503", code)
	}
	if code := status(t, health+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", code)
	}
	if code := status(t, px+"/api/x"); code != http.StatusServiceUnavailable || sends.Load() != 0 {
		t.Errorf("request with no credential: %d after %d sends, want 503 after none", code, sends.Load())
	}
	if v := metric(t, health, "thingspace_proxy_credential_valid"); v != 0 {
		t.Errorf("credential_valid = %v, want 0", v)
	}

	exp := time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
	vol.write(appData("tok-short", exp))
	eventually(t, "ready", func() bool { return status(t, health+"/readyz") == http.StatusOK })
	// The tracker records the expiry on its own goroutine, soon after the source has the credential.
	eventually(t, "the expiry metric", func() bool {
		return metric(t, health, "thingspace_proxy_credential_expiry_timestamp_seconds") == float64(exp.UnixMilli())/1e3
	})
	if v := metric(t, health, "thingspace_proxy_credential_valid"); v != 1 {
		t.Errorf("credential_valid = %v, want 1", v)
	}
	eventually(t, "unready at expiry", func() bool { return status(t, health+"/readyz") == http.StatusServiceUnavailable })
	if time.Now().Before(exp) {
		t.Errorf("unready before the credential's expiry")
	}
}
