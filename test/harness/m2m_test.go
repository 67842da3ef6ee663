package harness

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// TestSimM2M drives the M2M admin and client calls against an in-process simulator.
func TestSimM2M(t *testing.T) {
	const user, pw = "uws-user", "Uw!Passw0rd-x"
	srv := httptest.NewServer(simulator.New(simulator.Config{
		Apps:     map[string]string{"k": "s3cr3t"},
		M2MUsers: map[string]string{user: pw},
	}))
	defer srv.Close()
	sim := &Sim{URL: srv.URL, http: srv.Client()}
	ctx := t.Context()

	bearer, _, err := sim.RequestToken(ctx, "k", "s3cr3t")
	if err != nil {
		t.Fatal(err)
	}
	var m2mErr *M2MError
	if _, err := sim.M2MLogin(ctx, bearer, user, "Wr0ng!pass"); !errors.As(err, &m2mErr) || !strings.HasSuffix(m2mErr.Code, ".Password.Invalid") {
		t.Fatalf("wrong password: %v", err)
	} else if strings.Contains(err.Error(), "Wr0ng") {
		t.Fatalf("the error quotes the password: %v", err)
	}
	session, err := sim.M2MLogin(ctx, bearer, user, pw)
	if err != nil || session == "" {
		t.Fatalf("login: %q, %v", session, err)
	}
	if err := sim.M2MAccount(ctx, bearer, session, "0000123456-00001"); err != nil {
		t.Fatalf("account: %v", err)
	}
	if err := sim.M2MAccount(ctx, "not-a-token", session, "0000123456-00001"); !errors.As(err, &m2mErr) || m2mErr.Status != 401 || m2mErr.Code != "900901" {
		t.Fatalf("account with a bad Bearer: %v", err)
	}
	info, err := sim.M2MUser(user)
	if err != nil || info.Password != pw || info.Logins != 1 || info.ConsecutiveFailures != 0 || info.ActiveSessions != 1 {
		t.Fatalf("user: %+v, %v", info, err)
	}
	if n, err := sim.ActiveM2MSessions(); n != 1 || err != nil {
		t.Fatalf("active: %d, %v", n, err)
	}
	if n, err := sim.ExpireM2MSessions(); n != 1 || err != nil {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if err := sim.M2MAccount(ctx, bearer, session, "0000123456-00001"); !errors.As(err, &m2mErr) || !strings.Contains(m2mErr.Code, ".SessionToken.") {
		t.Fatalf("account with an expired session: %v", err)
	}
	session, err = sim.M2MLogin(ctx, bearer, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.M2MLogout(ctx, bearer, session); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if n, _ := sim.ActiveM2MSessions(); n != 0 {
		t.Fatalf("%d live sessions after the logout", n)
	}
	for range simulator.M2MLockoutThreshold {
		_, _ = sim.M2MLogin(ctx, bearer, user, "Wr0ng!pass")
	}
	if info, _ := sim.M2MUser(user); !info.Locked {
		t.Fatalf("not locked after %d failures: %+v", simulator.M2MLockoutThreshold, info)
	}
	if err := sim.UnlockM2MUser(user); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetM2MUser(user, "N3w!Passw0rd"); err != nil {
		t.Fatal(err)
	}
	if info, _ := sim.M2MUser(user); info.Locked || info.Password != "N3w!Passw0rd" {
		t.Fatalf("after unlock and a new password: %+v", info)
	}
	st, err := sim.Stats()
	if err != nil || st[RouteM2MLogin]["200"] != 2 || st[RouteM2MLogout]["200"] != 1 || st[RouteM2MAccount]["200"] != 1 {
		t.Fatalf("stats: %v, %v", st, err)
	}
}

func TestSensitiveUWS(t *testing.T) {
	var s Sensitive
	s.AddUWSCredentials("u", `Back\slash!9A`)
	if got := s.Scan("log", `{"password":"Back\\slash!9A"}`); len(got) != 1 {
		t.Fatalf("JSON-escaped password: %v", got)
	}
	if got := s.Scan("log", `pw Back\slash!9A`); len(got) != 1 {
		t.Fatalf("plain password: %v", got)
	}
}
