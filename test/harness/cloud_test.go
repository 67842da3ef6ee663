package harness

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// TestSimCloud drives the Verizon Cloud admin and client calls against an in-process simulator.
func TestSimCloud(t *testing.T) {
	const id, secret, cb = "web", "Cl0ud-s3cret", "http://127.0.0.1:9/cb"
	srv := httptest.NewServer(simulator.New(simulator.Config{}))
	defer srv.Close()
	sim := &Sim{URL: srv.URL, http: srv.Client()}
	ctx := t.Context()

	if err := sim.SetCloudApp(id, secret, cb); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetCloudApp("bad:id", secret, cb); err == nil {
		t.Fatal("a client id with ':' was accepted")
	}
	loc, err := sim.CloudAuthorize(ctx, sim.CloudAuthorizeURL(id, cb, "st", "iOS"))
	if err != nil || !strings.HasPrefix(loc.String(), cb+"?") || loc.Query().Get("state") != "st" {
		t.Fatalf("authorize: %v, %v", loc, err)
	}
	if _, err := sim.CloudAuthorize(ctx, sim.CloudAuthorizeURL(id, cb+"/", "", "")); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("authorize with another redirect_uri: %v", err)
	}

	// The operator's part, by hand: exchange the code.
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {cb},
		"client_id": {id}, "client_secret": {secret}}
	resp, err := srv.Client().PostForm(srv.URL+"/cloud/1/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d, %v", resp.StatusCode, err)
	}

	if ok, err := sim.CloudAccountOK(ctx, tok.AccessToken); !ok || err != nil {
		t.Fatalf("account with a live token: %v, %v", ok, err)
	}
	if ok, err := sim.CloudAccountOK(ctx, "not-a-token"); ok || err != nil {
		t.Fatalf("account with a bad token: %v, %v", ok, err)
	}
	if err := sim.SetCloudTokenDelay(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetCloudDenyConsent(true); err != nil {
		t.Fatal(err)
	}
	if loc, err := sim.CloudAuthorize(ctx, sim.CloudAuthorizeURL(id, cb, "", "")); err != nil || loc.Query().Get("error") != "access_denied" {
		t.Fatalf("denied authorize: %v, %v", loc, err)
	}
	if err := sim.SetCloudDenyConsent(false); err != nil {
		t.Fatal(err)
	}
	if n, err := sim.RevokeCloudGrants(id); n != 1 || err != nil {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	if ok, err := sim.CloudAccountOK(ctx, tok.AccessToken); ok || err != nil {
		t.Fatalf("account after revoke: %v, %v", ok, err)
	}
	if _, err := sim.RevokeCloudGrants("nobody"); err == nil {
		t.Fatal("revoking an unknown client did not fail")
	}

	st, err := sim.CloudStats()
	want := CloudStats{CodesIssued: 1, Denials: 1, CodeExchanges: 1}
	if err != nil || st != want {
		t.Fatalf("cloud stats %+v, %v; want %+v", st, err, want)
	}
	for route, n := range map[string]int{RouteCloudAuthorize: 3, RouteCloudToken: 1, RouteCloudAccount: 3} {
		if got, err := sim.Total(route); got != n || err != nil {
			t.Fatalf("%s: %d requests, %v; want %d", route, got, err, n)
		}
	}
	if err := sim.ResetStats(); err != nil {
		t.Fatal(err)
	}
	if st, err := sim.CloudStats(); st != (CloudStats{}) || err != nil {
		t.Fatalf("cloud stats after reset %+v, %v", st, err)
	}
}

func TestSimConfigCloudArgs(t *testing.T) {
	c := SimConfig{
		CloudApps: map[string]CloudApp{
			"b": {Secret: "s2", CallbackURL: "https://b.example/cb"},
			"a": {Secret: "s1", CallbackURL: "http://127.0.0.1:8080/cb?x=1"},
		},
		CloudAccessTokenLifetime: 4 * time.Second,
		CloudCodeLifetime:        time.Minute,
		CloudDenyConsent:         true,
		CloudTokenDelay:          500 * time.Millisecond,
	}
	want := []string{
		"--cloud-app", "a:s1:http://127.0.0.1:8080/cb?x=1",
		"--cloud-app", "b:s2:https://b.example/cb",
		"--cloud-access-token-lifetime", "4s",
		"--cloud-code-lifetime", "1m0s",
		"--cloud-token-delay", "500ms",
		"--cloud-deny-consent",
	}
	if got := c.cloudArgs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("args\n got %q\nwant %q", got, want)
	}
	if got := (SimConfig{}).cloudArgs(); len(got) != 0 {
		t.Fatalf("zero config adds %q", got)
	}
}
