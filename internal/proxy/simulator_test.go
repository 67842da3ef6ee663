package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/test/harness"
)

// operator plays the operator against the simulator: it fetches and revokes app tokens, logs in,
// and publishes an M2MSession Secret into the volume the way the kubelet would.
type operator struct {
	t       *testing.T
	base    string
	vol     *volume
	tok     string
	exp     time.Time
	sess    string
	secrets []string // every value published, for the leak check
}

func (o *operator) call(method, path, auth string, form url.Values, body string, out any) {
	o.t.Helper()
	var r io.Reader = strings.NewReader(body)
	if form != nil {
		r = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, o.base+path, r)
	must(o.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("fleet-key", "fleet-secret")
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	must(o.t, err)
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		o.t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
	if out != nil {
		must(o.t, json.NewDecoder(resp.Body).Decode(out))
	}
}

func (o *operator) fetchToken() {
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	o.call(http.MethodPost, "/api/ts/v1/oauth2/token", "", url.Values{"grant_type": {"client_credentials"}}, "", &tr)
	o.tok, o.exp = tr.AccessToken, time.Now().Add(time.Duration(tr.ExpiresIn)*time.Second)
}

func (o *operator) login() {
	var lr struct {
		SessionToken string `json:"sessionToken"`
	}
	o.call(http.MethodPost, "/api/m2m/v1/session/login", "Bearer "+o.tok, nil, `{"username":"fleet-user","password":"Fl33t-pass"}`, &lr)
	o.sess = lr.SessionToken
}

func (o *operator) publish() {
	o.secrets = append(o.secrets, o.tok, o.sess)
	o.vol.write(sessionData(o.tok, o.sess, o.exp))
}

// rotateToken is a renewal with revoke (renewBefore): the old token dies at once, and the new one
// reaches the volume 100 ms later (the operator's and the kubelet's latency, compressed).
func (o *operator) rotateToken() {
	o.call(http.MethodPost, "/api/ts/v1/oauth2/revoke", "", url.Values{"grant_type": {"client_credentials"}, "token": {o.tok}}, "", nil)
	time.Sleep(100 * time.Millisecond)
	o.fetchToken()
	o.publish()
}

// The sidecar against the simulator, an M2M workload calling every few milliseconds through three
// app-token revocations and two session losses: no call fails, the rejected ones are retried once
// with the credential the volume got meanwhile, and no token reaches the log or the metrics.
func TestSidecarAgainstTheSimulatorThroughRotations(t *testing.T) {
	sim := simulator.New(simulator.Config{
		Apps:     map[string]string{"fleet-key": "fleet-secret"},
		M2MUsers: map[string]string{"fleet-user": "Fl33t-pass"},
	})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	op := &operator{t: t, base: ts.URL, vol: newVolume(t)}
	op.fetchToken()
	op.login()
	op.publish()

	var logs harness.LogBuffer
	px, health := startSidecar(t, &logs, "--credentials-dir="+op.vol.dir, "--upstream="+ts.URL, "--max-wait=2s")
	eventually(t, "ready", func() bool { return status(t, health+"/readyz") == http.StatusOK })

	var calls, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				// The workload's call: no token code, no credential header.
				resp, err := http.Get(px + "/api/m2m/v1/accounts/0000123456-00001")
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
				}
			}
		}()
	}
	for range 3 {
		time.Sleep(150 * time.Millisecond)
		op.rotateToken()
	}
	for range 2 {
		time.Sleep(150 * time.Millisecond)
		sim.ExpireM2MSessions() // the session ends on the platform (idle timeout, a reset)
		time.Sleep(100 * time.Millisecond)
		op.login()
		op.publish()
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("%d calls through 3 token revocations and 2 session losses, %d failed", calls.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed; the first: %v", failed.Load(), calls.Load(), firstFailure.Load())
	}
	if calls.Load() < 50 {
		t.Errorf("only %d calls: the workload did not keep calling", calls.Load())
	}
	for series, least := range map[string]float64{
		`thingspace_proxy_credential_rejections_total{reason="gateway_900901"}`:    1,
		`thingspace_proxy_credential_rejections_total{reason="m2m_session_token"}`: 1,
		"thingspace_proxy_retries_total":                                           2,
		`thingspace_proxy_requests_total{code="2xx",source="upstream"}`:            float64(calls.Load()),
	} {
		if v := metric(t, health, series); v < least {
			t.Errorf("%s = %v, want at least %v", series, v, least)
		}
	}
	if v := metric(t, health, "thingspace_proxy_credential_changes_total"); v != 6 {
		t.Errorf("credential changes %v, want 6 (the first and five rotations)", v)
	}
	resp, err := http.Get(health + "/metrics")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	noLeak(t, "/metrics", string(b), op.secrets...)
	noLeak(t, "the log", logs.String(), op.secrets...)
}
