package credentials

import (
	"context"
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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// simOperator plays the operator against the simulator: it fetches tokens, logs in and publishes the
// M2MSession Secret, either into a kubelet-style volume or through the API (a fake clientset).
type simOperator struct {
	t       *testing.T
	base    string
	clock   *clocktesting.FakeClock
	publish func(map[string]string)

	bearer, session string
	expires         time.Time
}

func (o *simOperator) post(path string, body io.Reader, set func(*http.Request)) []byte {
	o.t.Helper()
	req, err := http.NewRequest(http.MethodPost, o.base+path, body)
	if err != nil {
		o.t.Fatal(err)
	}
	set(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		o.t.Fatalf("%s: %d", path, resp.StatusCode)
	}
	return b
}

func (o *simOperator) token() {
	b := o.post("/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"), func(r *http.Request) {
		r.SetBasicAuth("app-key", "app-secret")
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	})
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(b, &tok); err != nil {
		o.t.Fatal(err)
	}
	o.bearer, o.expires = tok.AccessToken, o.clock.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
}

func (o *simOperator) revoke() {
	o.post("/api/ts/v1/oauth2/revoke", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "token": {o.bearer}}.Encode()), func(r *http.Request) {
		r.SetBasicAuth("app-key", "app-secret")
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	})
}

func (o *simOperator) login() {
	b := o.post("/api/m2m/v1/session/login", strings.NewReader(`{"username":"fleet-user","password":"Fl33t-Passw0rd"}`), func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+o.bearer)
		r.Header.Set("Content-Type", "application/json")
	})
	var s struct {
		SessionToken string `json:"sessionToken"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		o.t.Fatal(err)
	}
	o.session = s.SessionToken
}

func (o *simOperator) write() { o.publish(sessionSecret(o.bearer, o.session, o.expires)) }

// TestTransportAgainstSimulator: a workload calls the simulator's M2M API through the Transport while
// the operator rotates the Bearer (revoked: 900901), the session (expired: .SessionToken.) and both at
// the token's natural expiry, publishing each a moment after the old credential died. No call fails.
func TestTransportAgainstSimulator(t *testing.T) {
	for _, kind := range []string{"DirSource", "SecretSource"} {
		t.Run(kind, func(t *testing.T) {
			fc := clocktesting.NewFakeClock(time.Now())
			sim := simulator.New(simulator.Config{
				Apps: map[string]string{"app-key": "app-secret"}, M2MUsers: map[string]string{"fleet-user": "Fl33t-Passw0rd"}, Clock: fc})
			srv := httptest.NewServer(sim)
			defer srv.Close()
			op := &simOperator{t: t, base: srv.URL, clock: fc}

			var src Source
			op.token()
			op.login()
			switch kind {
			case "DirSource":
				vol := newKubeletVolume(t)
				op.publish = vol.write
				op.write()
				s, err := NewDirSource(vol.dir, WithDirClock(fc), WithPollInterval(24*time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				src = s
			case "SecretSource":
				cs := fake.NewClientset(secretObject("1", sessionSecret(op.bearer, op.session, op.expires)))
				op.publish = func(data map[string]string) {
					if _, err := cs.CoreV1().Secrets("ns").Update(context.Background(), secretObject("", data), metav1.UpdateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				s, err := NewSecretSource(context.Background(), cs, "ns", "fleet-session", WithSecretClock(fc))
				if err != nil {
					t.Fatal(err)
				}
				for len(cs.Actions()) < 2 {
					time.Sleep(time.Millisecond) // the fake's watch is registered
				}
				src = s
			}
			defer func() { _ = src.Close() }()

			rec := &recorder{}
			// MaxWait is on the fake clock, which only the expiry rotation steps (before anyone waits):
			// a wait can only end with a newer credential.
			client := &http.Client{Transport: &Transport{Source: src, Base: srv.Client().Transport, MaxWait: time.Minute, Observe: rec.observe, Clock: fc}}
			var ok, failed atomic.Int64
			var firstFailure atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						ctx, cancel := context.WithTimeout(context.Background(), within)
						req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/m2m/v1/accounts/0000123456-00001", nil)
						resp, err := client.Do(req)
						if err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							_ = resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								err = fmt.Errorf("status %d", resp.StatusCode)
							}
						}
						cancel()
						if err != nil {
							failed.Add(1)
							firstFailure.CompareAndSwap(nil, err.Error())
						} else {
							ok.Add(1)
						}
						time.Sleep(time.Millisecond)
					}
				})
			}
			// settle lets the workload make calls with the current credential, then opens the dead
			// window: the old credential is dead and the new one not yet published.
			settle := func() {
				for n := ok.Load() + 20; ok.Load() < n && failed.Load() == 0; {
					time.Sleep(time.Millisecond)
				}
			}
			deadWindow := func() { time.Sleep(30 * time.Millisecond) }
			for range 3 {
				settle()
				op.revoke() // the Bearer dies at once: 900901
				deadWindow()
				op.token()
				op.write()

				settle()
				sim.ExpireM2MSessions() // the session dies: SessionToken.Expired
				deadWindow()
				op.login()
				op.write()

				settle()
				fc.SetTime(op.expires) // the Bearer expires, and the session idles out with it
				deadWindow()
				op.token()
				op.login()
				op.write()
			}
			settle()
			close(stop)
			wg.Wait()

			counts := map[string]int{}
			for _, e := range rec.events {
				k := string(e.Kind)
				if e.Reason != "" {
					k += "/" + e.Reason
				}
				counts[k]++
			}
			t.Logf("%d calls ok, %d failed; events %v", ok.Load(), failed.Load(), counts)
			if failed.Load() != 0 {
				t.Fatalf("%d calls failed, first: %v", failed.Load(), firstFailure.Load())
			}
			if counts["retry"] == 0 || counts["rejected/"+ReasonGatewayInvalidCredentials] == 0 || counts["rejected/"+ReasonSessionToken] == 0 {
				t.Fatalf("the dead windows were not exercised: %v", counts)
			}
		})
	}
}
