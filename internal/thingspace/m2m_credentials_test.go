package thingspace

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/internal/upstream"
)

func TestUWSCredentialsRenderings(t *testing.T) {
	values := map[string]any{
		"UWSCredentials":  testUWS,
		"*UWSCredentials": &testUWS,
		"struct":          struct{ C UWSCredentials }{testUWS},
		"slice":           []any{testUWS},
		"map":             map[string]any{"c": testUWS},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, s := range renderings(t, v) {
				if l := m2mLeaked(s); len(l) > 0 {
					t.Errorf("rendering %q leaks %q", s, l)
				}
			}
		})
	}
	for _, tt := range []struct{ got, want string }{
		{fmt.Sprintf("%v", testUWS), "{Username:" + testUWSUser + " Password:" + Redacted + "}"},
		{fmt.Sprintf("%#v", testUWS), `thingspace.UWSCredentials{Username:"` + testUWSUser + `", Password:"` + Redacted + `"}`},
		{fmt.Sprintf("%v", UWSCredentials{Username: "u"}), "{Username:u Password:}"},
		{mustJSON(t, testUWS), `{"username":"` + testUWSUser + `","password":"` + Redacted + `"}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// --- credential rules ---

func TestValidateUWS(t *testing.T) {
	const (
		noUpper  = "password has no upper case letter"
		noLower  = "password has no lower case letter"
		noDigit  = "password has no digit"
		noSymbol = "password has no symbol"
		sequence = "password contains a common sequence (such as 12345, qwerty or abcde) or one character five times in a row"
		forbid   = `password contains a forbidden character (one of ; & < > [ ] , . ' " /)`
		control  = "password contains control characters (a trailing newline?)"
	)
	tests := []struct {
		name           string
		creds          UWSCredentials
		problems, warn []string
	}{
		{"policy-compliant", UWSCredentials{"ab", "Gr8-Horse!Bat"}, nil, nil},
		{"Verizon-generated (no symbol)", UWSCredentials{"machine", testNewPass}, nil, []string{noSymbol}},
		{"32-character username and password", UWSCredentials{strings.Repeat("u", 32), "Aa1-" + strings.Repeat("xyZ9", 7)}, nil, nil},
		{"multi-byte characters count once", UWSCredentials{"ée", "Ünïcødé-1"}, nil, nil},
		{"empty username", UWSCredentials{"", "Gr8-Horse!Bat"}, []string{"username is empty"}, nil},
		{"1-character username", UWSCredentials{"u", "Gr8-Horse!Bat"}, []string{"username is 1 character long; 2 to 32 required"}, nil},
		{"33-character username", UWSCredentials{strings.Repeat("u", 33), "Gr8-Horse!Bat"}, []string{"username is 33 characters long; 2 to 32 required"}, nil},
		{"username with a newline", UWSCredentials{"user\n", "Gr8-Horse!Bat"}, []string{"username contains control characters"}, nil},
		{"username not UTF-8", UWSCredentials{"us\xffer", "Gr8-Horse!Bat"}, []string{"username is not valid UTF-8"}, nil},
		{"empty password", UWSCredentials{"user", ""}, []string{"password is empty"}, nil},
		{"short password", UWSCredentials{"user", "Ab1-x"}, []string{"password is 5 characters long; 8 to 32 required"}, nil},
		{"long password", UWSCredentials{"user", "Aa1-" + strings.Repeat("xyZ9", 8)}, []string{"password is 36 characters long; 8 to 32 required"}, nil},
		{"password not UTF-8", UWSCredentials{"user", "Gr8-Horse\xff"}, []string{"password is not valid UTF-8"}, nil},
		{"password with a trailing newline", UWSCredentials{"user", "Gr8-Horse!Bat\n"}, []string{control}, nil},
		{"forbidden ;", UWSCredentials{"user", "Gr8;HorseBat"}, []string{forbid}, nil},
		{"forbidden &", UWSCredentials{"user", "Gr8&HorseBat"}, []string{forbid}, nil},
		{"forbidden <", UWSCredentials{"user", "Gr8<HorseBat"}, []string{forbid}, nil},
		{"forbidden >", UWSCredentials{"user", "Gr8>HorseBat"}, []string{forbid}, nil},
		{"forbidden [", UWSCredentials{"user", "Gr8[HorseBat"}, []string{forbid}, nil},
		{"forbidden ]", UWSCredentials{"user", "Gr8]HorseBat"}, []string{forbid}, nil},
		{"forbidden ,", UWSCredentials{"user", "Gr8,HorseBat"}, []string{forbid}, nil},
		{"forbidden .", UWSCredentials{"user", "Gr8.HorseBat"}, []string{forbid}, nil},
		{"forbidden '", UWSCredentials{"user", "Gr8'HorseBat"}, []string{forbid}, nil},
		{`forbidden "`, UWSCredentials{"user", `Gr8"HorseBat`}, []string{forbid}, nil},
		{"forbidden /", UWSCredentials{"user", "Gr8/HorseBat"}, []string{forbid}, nil},
		{"short and forbidden", UWSCredentials{"user", "a.b"}, []string{"password is 3 characters long; 8 to 32 required", forbid}, []string{noUpper, noDigit}},
		{"no upper", UWSCredentials{"user", "gr8-horse!bat"}, nil, []string{noUpper}},
		{"no lower", UWSCredentials{"user", "GR8-HORSE!BAT"}, nil, []string{noLower}},
		{"no digit", UWSCredentials{"user", "Great-Horse!Bat"}, nil, []string{noDigit}},
		{"letters only", UWSCredentials{"user", "horsebattery"}, nil, []string{noUpper, noDigit, noSymbol}},
		{"12345", UWSCredentials{"user", "Ab-x12345"}, nil, []string{sequence}},
		{"54321", UWSCredentials{"user", "Ab-x54321"}, nil, []string{sequence}},
		{"67890", UWSCredentials{"user", "Ab-x67890"}, nil, []string{sequence}},
		{"qwerty in any case", UWSCredentials{"user", "QwErTy-9z"}, nil, []string{sequence}},
		{"abcde", UWSCredentials{"user", "9-xABCDEz"}, nil, []string{sequence}},
		{"five of a kind", UWSCredentials{"user", "Ab-9zzzzz"}, nil, []string{sequence}},
		{"four of a kind is fine", UWSCredentials{"user", "Ab-9zzzz"}, nil, nil},
		{"1234 is fine", UWSCredentials{"user", "Ab-x1234y"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, warnings := ValidateUWS(tt.creds)
			if fmt.Sprintf("%q", problems) != fmt.Sprintf("%q", tt.problems) {
				t.Errorf("problems = %q, want %q", problems, tt.problems)
			}
			if fmt.Sprintf("%q", warnings) != fmt.Sprintf("%q", tt.warn) {
				t.Errorf("warnings = %q, want %q", warnings, tt.warn)
			}
			// No message may contain the password.
			for _, msg := range append(problems, warnings...) {
				if p := tt.creds.Password; p != "" && strings.Contains(msg, p) {
					t.Errorf("message %q contains the password", msg)
				}
			}
		})
	}
}

// Messages are fixed sentences: no password, however chosen, shows up in them. Each password
// is prefixed with a NUL, which no message contains unless it quotes the password.
func TestValidateUWSNeverQuotesThePassword(t *testing.T) {
	passwords := []string{
		"has no upper case letter", "password", "12345", "a", "characters long", "forbidden",
		"Gr8;HorseBat", "qwerty", "x.y", "required", "symbol", "8 to 32",
	}
	for _, p := range passwords {
		problems, warnings := ValidateUWS(UWSCredentials{Username: "user", Password: "\x00" + p})
		for _, msg := range append(problems, warnings...) {
			if strings.Contains(msg, "\x00") {
				t.Errorf("password %q: message %q quotes it", p, msg)
			}
		}
	}
}

// --- against the simulator ---

// TestM2MAgainstSimulator runs every call and every error the controller relies on against the
// simulator, so client and simulator are known to agree on the wire.
func TestM2MAgainstSimulator(t *testing.T) {
	sim := simulator.New(simulator.Config{
		Apps:     map[string]string{testKey: testSecret},
		M2MUsers: map[string]string{testUWSUser: testUWSPass},
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tok, err := c.Token(ctx, testCreds, "")
	if err != nil {
		t.Fatal(err)
	}
	app := tok.AccessToken

	// A wrong password is a login rejection; five in a row lock the user, and the locked
	// answer is a login rejection too.
	wrong := UWSCredentials{Username: testUWSUser, Password: "Wrong-Pass1"}
	for i := range 5 {
		_, err := c.Login(ctx, app, wrong)
		if upstream.KindOf(err) != upstream.Rejected || IsBearerRejected(err) || IsSessionInvalid(err) {
			t.Fatalf("wrong password %d: %v", i, err)
		}
		if code := err.(*upstream.Error).Code; code != codePassword {
			t.Fatalf("wrong password: Code %q", code)
		}
	}
	_, err = c.Login(ctx, app, testUWS)
	if upstream.KindOf(err) != upstream.Rejected || err.(*upstream.Error).Code != simulator.DefaultM2MLockedCode {
		t.Fatalf("locked: %v", err)
	}
	sim.UnlockM2MUser(testUWSUser)

	session, err := c.Login(ctx, app, testUWS)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := c.Account(ctx, app, session, testAcct); err != nil {
		t.Fatalf("account: %v", err)
	}

	// Reset: the returned password is the one in force.
	if _, err := c.ResetPassword(ctx, app, session, "Wrong-Pass1"); upstream.KindOf(err) != upstream.Rejected || IsSessionInvalid(err) {
		t.Fatalf("reset with a wrong old password: %v", err)
	}
	newPass, err := c.ResetPassword(ctx, app, session, testUWSPass)
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	if info, _ := sim.M2MUser(testUWSUser); info.Password != newPass {
		t.Fatal("ResetPassword returned a password that is not in force")
	}
	if problems, _ := ValidateUWS(UWSCredentials{Username: testUWSUser, Password: newPass}); len(problems) > 0 {
		t.Fatalf("a simulator password breaks the rules: %q", problems)
	}
	if _, err := c.Login(ctx, app, testUWS); upstream.KindOf(err) != upstream.Rejected || IsBearerRejected(err) {
		t.Fatalf("old password after reset: %v", err)
	}
	session2, err := c.Login(ctx, app, UWSCredentials{Username: testUWSUser, Password: newPass})
	if err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	// Expired and ended sessions.
	sim.ExpireM2MSessions()
	if err := c.Account(ctx, app, session, testAcct); !IsSessionInvalid(err) || err.(*upstream.Error).Code != codeExpired {
		t.Fatalf("account on an expired session: %v", err)
	}
	if err := c.Logout(ctx, app, session2); !IsSessionInvalid(err) {
		t.Fatalf("logout of an expired session: %v", err)
	}
	session3, err := c.Login(ctx, app, UWSCredentials{Username: testUWSUser, Password: newPass})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx, app, session3); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if err := c.Account(ctx, app, session3, testAcct); !IsSessionInvalid(err) || err.(*upstream.Error).Code != codeInvalid {
		t.Fatalf("account after logout: %v", err)
	}

	// A revoked app token is a Bearer rejection, on login as on session calls, and never a
	// login rejection: the user's failure count does not move.
	session4, err := c.Login(ctx, app, UWSCredentials{Username: testUWSUser, Password: newPass})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, testCreds, app); err != nil {
		t.Fatal(err)
	}
	if err := c.Account(ctx, app, session4, testAcct); !IsBearerRejected(err) || IsSessionInvalid(err) {
		t.Fatalf("account with a revoked token: %v", err)
	}
	if _, err := c.Login(ctx, app, wrong); !IsBearerRejected(err) {
		t.Fatalf("login with a revoked token: %v", err)
	}
	if info, _ := sim.M2MUser(testUWSUser); info.ConsecutiveFailures != 0 {
		t.Fatalf("a Bearer rejection counted as a failed login: %+v", info.ConsecutiveFailures)
	}

	// Throttling is transient with its Retry-After, and not a login rejection.
	tok, _ = c.Token(ctx, testCreds, "")
	sim.SetFaults(simulator.Faults{Rate: 1, Status: 429, RetryAfter: 3 * time.Second})
	_, err = c.Login(ctx, tok.AccessToken, UWSCredentials{Username: testUWSUser, Password: newPass})
	if ra, _ := upstream.RetryAfterOf(err); !upstream.IsTransient(err) || ra != 3*time.Second {
		t.Fatalf("throttled login: %v", err)
	}
}
