package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRunM2MSessionTiedFlag: with --m2m-session-tied-to-token a session refuses another app's live
// Bearer; without it the same call succeeds.
func TestRunM2MSessionTiedFlag(t *testing.T) {
	for _, tied := range []bool{false, true} {
		args := []string{"--app", "k:s", "--app", "k2:s2", "--m2m-user", "flag-user:FlagPass9"}
		if tied {
			args = append(args, "--m2m-session-tied-to-token")
		}
		base, stderr, stop := startRun(t, args...)
		token := func(key, secret string) string {
			req, _ := http.NewRequest("POST", base+"/api/ts/v1/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(key, secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			tok, _ := m["access_token"].(string)
			return tok
		}
		a, b := token("k", "s"), token("k2", "s2")
		_, m := doJSON(t, "POST", base+"/api/m2m/v1/session/login", a, "", `{"username":"flag-user","password":"FlagPass9"}`)
		session, _ := m["sessionToken"].(string)
		account := base + "/api/m2m/v1/accounts/0000123456-00001"
		if st, m := doJSON(t, "GET", account, a, session, ""); st != 200 {
			t.Fatalf("tied=%v: own bearer: %d %v", tied, st, m)
		}
		st, m := doJSON(t, "GET", account, b, session, "")
		if tied && (st != 400 || m["errorCode"] != "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid") {
			t.Fatalf("tied: another app's bearer: %d %v", st, m)
		}
		if !tied && st != 200 {
			t.Fatalf("untied: another app's bearer: %d %v", st, m)
		}
		stop()
		if want := "session tied to token " + map[bool]string{false: "false", true: "true"}[tied]; !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr does not say %q: %s", want, stderr.String())
		}
	}
}
