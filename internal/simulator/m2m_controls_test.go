package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestNewM2MPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		p := newM2MPassword()
		if len(p) != m2mPasswordLen || strings.Trim(p, m2mPasswordAlphabet) != "" ||
			!strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") ||
			!strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") ||
			!strings.ContainsAny(p, "0123456789") {
			t.Fatalf("password %q is not 12 letters and digits with each class", p)
		}
		if seen[p] {
			t.Fatal("password repeated: not random")
		}
		seen[p] = true
	}
}

func TestM2MAccount(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	w := f.account(bearer, s)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("account: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	m := decodeMap(t, w.Body.Bytes())
	if m["accountName"] != testAccount || m["accountNumber"] != "0000123456" {
		t.Fatalf("account body %s", w.Body)
	}
	// A POST is not the keep-alive: the gateway knows no such resource.
	r := m2mReq(http.MethodPost, accountPath(testAccount), bearer, s, "")
	if code := faultOf(t, f.do(r).Body.Bytes())["code"]; code != "900906" {
		t.Fatalf("POST accounts: fault %v", code)
	}
}

func TestM2MStats(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	f.srv.ResetStats()
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	f.login(bearer, uwsUser, "Wrong-Pass1")
	f.login("", uwsUser, uwsPass)
	f.account(bearer, s)
	f.do(m2mReq(http.MethodGet, accountPath("0000999999-00002"), bearer, s, ""))
	f.account(bearer, "")
	f.reset(bearer, s, "Wrong-Pass1")
	f.logout(bearer, s)
	f.logout(bearer, s)
	f.do(m2mReq(http.MethodGet, m2mLoginPath, bearer, "", ""))
	f.srv.SetFaults(Faults{Rate: 1, Status: 429})
	f.login(bearer, uwsUser, uwsPass)
	f.srv.SetFaults(Faults{})
	// Admin traffic is not counted.
	f.do(httptest.NewRequest(http.MethodGet, "/admin/m2m/sessions", nil))
	f.do(httptest.NewRequest(http.MethodGet, "/admin/m2m/users/"+uwsUser, nil))

	want := map[string]map[string]int{
		loginRoute:   {"200": 1, "400": 1, "401": 1, "429": 1},
		accountRoute: {"200": 2, "400": 1},
		resetRoute:   {"400": 1},
		logoutRoute:  {"200": 1, "400": 1},
		"GET /api/":  {"400": 1},
	}
	if got := f.srv.Stats().Requests; !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\n got %v\nwant %v", got, want)
	}
	// The faulted login never reached the handler.
	if u := f.user(uwsUser); u.Logins != 1 || u.ConsecutiveFailures != 1 {
		t.Fatalf("user %+v", u)
	}
}

func TestM2MConfigUsersCopied(t *testing.T) {
	users := map[string]string{uwsUser: uwsPass}
	f, bearer := newM2MFixture(t, func(c *Config) { c.M2MUsers = users })
	users[uwsUser] = "changed"
	users["added"] = "Added-Pass1"
	f.mustLogin(bearer, uwsUser, uwsPass)
	if _, ok := f.srv.M2MUser("added"); ok {
		t.Fatal("Config.M2MUsers is not copied")
	}
}

func TestM2MSetUser(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	for range M2MLockoutThreshold {
		f.login(bearer, uwsUser, "Wrong-Pass1")
	}
	f.srv.SetM2MUser(uwsUser, "Changed-Pass2")
	u := f.user(uwsUser)
	if u.Password != "Changed-Pass2" || !u.Locked || u.Logins != 1 || u.ConsecutiveFailures != M2MLockoutThreshold {
		t.Fatalf("SetM2MUser must change only the password: %+v", u)
	}
	if w := f.account(bearer, s); w.Code != http.StatusOK {
		t.Fatal("SetM2MUser ended a session")
	}
	f.srv.SetM2MUser("new-user", "New-Pass3")
	f.mustLogin(bearer, "new-user", "New-Pass3")
}

// TestM2MAdminOverHTTP drives /admin/m2m/* through a real listener.
func TestM2MAdminOverHTTP(t *testing.T) {
	srv := New(Config{Apps: map[string]string{appKey: appSecret}})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	call := func(method, path, bearer, session, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(path, tsTokenPath) {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(appKey, appSecret)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if session != "" {
			req.Header.Set(M2MTokenHeader, session)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(method, path, body string, status int) string {
		t.Helper()
		got, b := call(method, path, "", "", body)
		if got != status {
			t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, b)
		}
		return b
	}
	userInfo := func(name string) M2MUserInfo {
		t.Helper()
		var info M2MUserInfo
		if err := json.Unmarshal([]byte(expect("GET", "/admin/m2m/users/"+name, "", 200)), &info); err != nil {
			t.Fatal(err)
		}
		return info
	}

	expect("GET", "/admin/m2m/users/u1", "", 404)
	expect("PUT", "/admin/m2m/users/u1", `{"password":"First-Pass1"}`, 204)
	body := expect("GET", "/admin/m2m/users/u1", "", 200)
	if body != `{"locked":false,"consecutiveFailures":0,"logins":0,"password":"First-Pass1","activeSessions":0}`+"\n" {
		t.Fatalf("user body %s", body)
	}
	for _, bad := range []string{`{"password":""}`, `{"secret":"x"}`, `not json`} {
		expect("PUT", "/admin/m2m/users/u1", bad, 400)
	}

	_, tb := call("POST", tsTokenPath, "", "", "grant_type=client_credentials")
	var tok tokenBody
	if err := json.Unmarshal([]byte(tb), &tok); err != nil {
		t.Fatal(err)
	}
	for range M2MLockoutThreshold {
		if st, _ := call("POST", m2mLoginPath, tok.AccessToken, "", loginBody("u1", "nope")); st != 400 {
			t.Fatalf("bad login %d", st)
		}
	}
	if u := userInfo("u1"); !u.Locked || u.ConsecutiveFailures != M2MLockoutThreshold {
		t.Fatalf("after 5 failures %+v", u)
	}
	expect("POST", "/admin/m2m/users/u1/unlock", "", 204)
	expect("POST", "/admin/m2m/users/nobody/unlock", "", 404)
	st, b := call("POST", m2mLoginPath, tok.AccessToken, "", loginBody("u1", "First-Pass1"))
	if st != 200 {
		t.Fatalf("login after unlock: %d %s", st, b)
	}
	var sess struct{ SessionToken string }
	_ = json.Unmarshal([]byte(b), &sess)

	if b := expect("GET", "/admin/m2m/sessions", "", 200); b != `{"active":1}`+"\n" {
		t.Fatalf("sessions %s", b)
	}
	// Reset over the wire; the harness reads the new password back.
	st, b = call("PUT", m2mResetPath, tok.AccessToken, sess.SessionToken, resetBody("First-Pass1"))
	if st != 200 {
		t.Fatalf("reset %d %s", st, b)
	}
	var rb struct{ NewPassword string }
	_ = json.Unmarshal([]byte(b), &rb)
	if u := userInfo("u1"); u.Password != rb.NewPassword || u.Logins != 1 || u.ActiveSessions != 1 {
		t.Fatalf("after reset %+v", u)
	}

	if b := expect("POST", "/admin/m2m/sessions/expire", "", 200); b != `{"expired":1}`+"\n" {
		t.Fatalf("expire %s", b)
	}
	if b := expect("GET", "/admin/m2m/sessions", "", 200); b != `{"active":0}`+"\n" {
		t.Fatalf("sessions after expire %s", b)
	}
	st, b = call("GET", accountPath(testAccount), tok.AccessToken, sess.SessionToken, "")
	if st != 400 || !strings.Contains(b, m2mCodeSessionExpired) {
		t.Fatalf("account after expire: %d %s", st, b)
	}

	for route := range srv.Stats().Requests {
		if strings.Contains(route, "/admin") {
			t.Fatalf("admin route counted: %s", route)
		}
	}
}
