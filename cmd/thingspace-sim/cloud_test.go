package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// cloudClient talks to a running simulator's Verizon Cloud endpoints as the
// person's browser (authorize, no redirects followed) and as the client.
type cloudClient struct {
	t                 *testing.T
	base              string
	id, secret, cbURL string
	http              *http.Client
}

func newCloudClient(t *testing.T, base, id, secret, cbURL string) *cloudClient {
	return &cloudClient{t: t, base: base, id: id, secret: secret, cbURL: cbURL, http: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// authorize returns the redirect's query, failing unless the answer is 302.
func (c *cloudClient) authorize() url.Values {
	c.t.Helper()
	q := url.Values{"client_id": {c.id}, "redirect_uri": {c.cbURL}, "response_type": {"code"}, "state": {"st"}}
	resp, err := c.http.Get(c.base + "/cloud/1/oauth2/authorize?" + q.Encode())
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		c.t.Fatalf("authorize: status %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, c.cbURL) {
		c.t.Fatalf("Location %q is not the callback", loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Query()
}

// token posts a token request with Basic client credentials.
func (c *cloudClient) token(form url.Values) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/cloud/1/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.id, c.secret)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestRunCloudFlags(t *testing.T) {
	// The callback URL has colons of its own (scheme, port) and a query.
	const cb = "http://127.0.0.1:9/Callback?x=1"
	base, stderr, stop := startRun(t,
		"--cloud-app", "web:Cl0ud-secret:"+cb,
		"--cloud-app", "other:0ther-secret:https://other.example/cb",
		"--cloud-access-token-lifetime", "2m",
		"--cloud-refresh-token-lifetime", "1h",
		"--cloud-code-lifetime", "1s",
		"--cloud-token-delay", "300ms",
	)
	c := newCloudClient(t, base, "web", "Cl0ud-secret", cb)

	back := c.authorize()
	if back.Get("code") == "" || back.Get("state") != "st" || back.Get("x") != "1" {
		t.Fatalf("redirect query %v", back)
	}
	start := time.Now()
	st, m := c.token(url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {cb}})
	if st != 200 || m["expires_in"] != float64(120) || m["refresh_token"] == nil {
		t.Fatalf("exchange: %d %v", st, m)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("token answered after %v, want the 300ms delay", d)
	}

	// --cloud-code-lifetime 1s.
	code := c.authorize().Get("code")
	time.Sleep(1100 * time.Millisecond)
	if st, m := c.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}}); st != 401 || m["error"] != "invalid_grant" {
		t.Fatalf("expired code: %d %v", st, m)
	}
	// The second app exists too.
	newCloudClient(t, base, "other", "0ther-secret", "https://other.example/cb").authorize()

	stop()
	out := stderr.String()
	if !strings.Contains(out, "web -> "+cb) || !strings.Contains(out, "other -> https://other.example/cb") {
		t.Errorf("stderr does not name the cloud apps: %s", out)
	}
	for _, secret := range []string{"Cl0ud-secret", "0ther-secret", back.Get("code")} {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret or code reached stderr: %s", out)
		}
	}
}

func TestRunCloudDenyConsent(t *testing.T) {
	const cb = "https://app.example/cb"
	base, _, stop := startRun(t, "--cloud-app", "web:s3cret:"+cb, "--cloud-deny-consent")
	defer stop()
	back := newCloudClient(t, base, "web", "s3cret", cb).authorize()
	if back.Get("error") != "access_denied" || back.Has("code") || back.Get("state") != "st" {
		t.Fatalf("redirect query %v", back)
	}
	resp, err := http.Get(base + "/admin/cloud/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"denials":1`) {
		t.Fatalf("cloud stats %s", b)
	}
}

func TestRunRejectsBadCloudFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no callback", []string{"--cloud-app", "web:SECRET1"}, "client-id:secret:callback-url"},
		{"only a client id", []string{"--cloud-app", "web"}, "client-id:secret:callback-url"},
		{"empty secret", []string{"--cloud-app", "web::https://x.example/cb"}, "secret"},
		{"empty client id", []string{"--cloud-app", ":SECRET1:https://x.example/cb"}, "client id"},
		{"relative callback", []string{"--cloud-app", "web:SECRET1:/cb"}, "callback"},
		{"callback with fragment", []string{"--cloud-app", "web:SECRET1:https://x.example/cb#f"}, "callback"},
		{"duplicate", []string{"--cloud-app", "web:SECRET1:https://x.example/cb", "--cloud-app", "web:SECRET2:https://x.example/cb"}, `"web" given twice`},
		{"zero access lifetime", []string{"--cloud-access-token-lifetime", "0s"}, "cloud-access-token-lifetime"},
		{"negative refresh lifetime", []string{"--cloud-refresh-token-lifetime", "-1h"}, "cloud-refresh-token-lifetime"},
		{"zero code lifetime", []string{"--cloud-code-lifetime", "0s"}, "cloud-code-lifetime"},
		{"negative token delay", []string{"--cloud-token-delay", "-1s"}, "cloud-token-delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectRunFails(t, tt.args, tt.want) })
	}
}
