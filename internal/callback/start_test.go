package callback

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/credops/thingspace-operator/internal/consent"
)

// The start endpoint binds the browser (a __Host- cookie holding the start token) and sends it to
// Verizon with the state derived from the token; it spends nothing and shows nothing but a redirect.
func TestStartSetsTheCookieAndRedirects(t *testing.T) {
	f := newFixture(t)
	w := f.do(http.MethodGet, StartPath+"?state="+url.QueryEscape(f.token))
	if w.Code != http.StatusSeeOther || w.Body.Len() != 0 {
		t.Fatalf("answered %d with %d bytes", w.Code, w.Body.Len())
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), f.simURL+"/cloud/1/oauth2/authorize?") || q.Get("client_id") != appID ||
		q.Get("redirect_uri") != redirect || q.Get("state") != f.state() || q.Get("state") == f.token {
		t.Fatalf("redirected to %s", loc.Redacted())
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
		c.Domain != "" || c.Value != f.token || c.MaxAge <= 0 || c.MaxAge > 60 {
		t.Fatalf("cookie %+v", c)
	}
	for _, h := range []string{"Referrer-Policy", "Cache-Control"} {
		if w.Header().Get(h) == "" {
			t.Errorf("no %s on the redirect", h)
		}
	}
	if !f.live() || f.sim.CloudStats().CodeExchanges != 0 {
		t.Fatal("the start spent the state")
	}
	// The cookie it set completes the consent (the simulator's code, the state from the redirect).
	if code, page := f.call(http.MethodGet, f.callback(f.code()), c); code != http.StatusOK {
		t.Fatalf("callback with the start's cookie: %d %s", code, page)
	}
}

func TestStartRefusesUnknownLinks(t *testing.T) {
	f := newFixture(t)
	otherLink, _, _ := (&consent.Store{}).Ensure(f.ca.Status.DeepCopy(), f.ca, "", f.clk.Now())
	for _, c := range []struct {
		name, token, reason string
		later               time.Duration
	}{
		{"malformed", "short", reasonMalformed, 0},
		{"the state instead of the token", f.state(), reasonUnknownState, 0},
		{"a token never issued", consent.TokenOf(otherLink), reasonUnknownState, 0},
		{"expired", f.token, reasonUnknownState, 2 * time.Minute},
	} {
		f.clk.Step(c.later)
		before := testutil.ToFloat64(RejectedTotal.WithLabelValues(endpointStart, c.reason))
		w := f.do(http.MethodGet, StartPath+"?state="+url.QueryEscape(c.token))
		if w.Code != http.StatusBadRequest || len(w.Result().Cookies()) != 0 || w.Header().Get("Location") != "" {
			t.Errorf("%s: answered %d, cookies %v", c.name, w.Code, w.Result().Cookies())
		}
		if got := testutil.ToFloat64(RejectedTotal.WithLabelValues(endpointStart, c.reason)) - before; got != 1 {
			t.Errorf("%s: %s counted %v times", c.name, c.reason, got)
		}
	}
}
