package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	callbackpkg "github.com/credops/thingspace-operator/internal/callback"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestCloudSIGTERMMidCodeExchange (issue 8 scenarios 5, 18): a SIGTERM while the callback's code
// exchange is in flight (Verizon has spent the code and holds its answer) lets the exchange finish and
// its tokens be stored before the manager exits, and the browser still gets its page: the exchange is
// registered with internal/inflight, and the callback server's drain is bounded so that it does not eat
// the reconcilers' graceful budget. Serial: it restarts the suite's manager.
func TestCloudSIGTERMMidCodeExchange(t *testing.T) {
	const hold = 2 * time.Second
	e := newCloudEnv(t, cloudOpts{})
	t.Cleanup(func() {
		if !mgr.Running() {
			if err := mgr.Start(context.Background()); err != nil {
				t.Errorf("start the manager again: %v", err)
			}
		}
	})
	authURL := e.waitURL()
	if err := e.sim.SetCloudTokenDelay(hold); err != nil {
		t.Fatal(err)
	}
	// The browser, in the background: the page arrives only once the held answer is stored.
	type page struct {
		status int
		err    error
	}
	pages := make(chan page, 1)
	go func() {
		// The person's cookie jar: the start endpoint's binding cookie goes to the callback.
		browser := &http.Client{Timeout: 30 * time.Second, Jar: e.browser.Jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			e.add("a Cloud authorization code", req.URL.Query().Get("code"))
			if len(via) > 3 {
				return errors.New("too many redirects")
			}
			return nil
		}}
		resp, err := browser.Get(authURL)
		if err != nil {
			pages <- page{err: errors.New("the browser's request failed")} // the error quotes a URL with the code
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		pages <- page{status: resp.StatusCode}
	}()
	if err := harness.WaitFor(t.Context(), cloudWait, 20*time.Millisecond, func() (bool, error) {
		st, err := e.sim.CloudStats()
		return err == nil && st.CodeExchanges == 1, err
	}); err != nil {
		t.Fatalf("the code was never exchanged: %v", err)
	}

	stopping := time.Now()
	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not shut down cleanly: %v", err)
	}
	took := time.Since(stopping)
	t.Logf("the manager exited %v after SIGTERM (the answer was held %v)", took.Round(10*time.Millisecond), hold)
	if took > hold+callbackpkg.DefaultDrainTimeout+10*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	select {
	case p := <-pages:
		if p.err != nil || p.status != http.StatusOK {
			t.Errorf("the browser got %d (%v), want the 200 page", p.status, p.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the browser never got its page")
	}
	// Before anything restarts: the exchange's tokens are in the Secret.
	ct, _, ok := e.readSecret()
	if !ok || ct.refresh == "" || ct.access == "" || !e.accountOK(ct.access) {
		t.Fatalf("after SIGTERM mid-exchange the Secret holds no usable tokens (exists %v)", ok)
	}

	if err := e.sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	e.waitReady()
	st := e.checkNoReuse("after the SIGTERM mid-exchange restart")
	if st.CodeExchanges != 1 || st.LiveRefreshTokens != 1 {
		t.Errorf("%d code exchanges, %d live refresh tokens, want 1 and 1", st.CodeExchanges, st.LiveRefreshTokens)
	}
}
