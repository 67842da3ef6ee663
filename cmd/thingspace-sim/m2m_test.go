package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRun runs the binary's loop with args and returns its base URL, its
// stderr and a stop function that fails the test if run returned an error.
func startRun(t *testing.T, args ...string) (base string, stderr *syncBuilder, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr = &syncBuilder{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), pw, stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading address line: %v (stderr %s)", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	base = strings.TrimPrefix(strings.TrimSpace(line), "listening on ")
	return base, stderr, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not shut down")
		}
	}
}

// syncBuilder is a strings.Builder safe for the server goroutine and the test.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func doJSON(t *testing.T, method, url, bearer, session, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if session != "" {
		req.Header.Set("VZ-M2M-Token", session)
	}
	if strings.Contains(url, "/oauth2/token") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("k", "s")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestRunM2MFlags(t *testing.T) {
	usersFile := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(usersFile, []byte("# uws\nfile-user:FilePass:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const lockedCode = "UnifiedWebService.REQUEST_FAILED.Custom.Locked"
	base, stderr, stop := startRun(t,
		"--app", "k:s",
		"--m2m-user", "flag-user:FlagPass9",
		"--m2m-users-file", usersFile,
		"--m2m-idle-timeout", "1s",
		"--m2m-locked-code", lockedCode,
		"--m2m-reset-ends-sessions",
	)

	_, tok := doJSON(t, "POST", base+"/api/ts/v1/oauth2/token", "", "", "grant_type=client_credentials")
	bearer, _ := tok["access_token"].(string)
	login := func(user, pass string) (int, map[string]any) {
		b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
		return doJSON(t, "POST", base+"/api/m2m/v1/session/login", bearer, "", string(b))
	}

	// Both users exist; the password from the file keeps its colon.
	if st, m := login("file-user", "FilePass:1"); st != 200 || m["sessionToken"] == nil {
		t.Fatalf("file user login: %d %v", st, m)
	}
	st, m := login("flag-user", "FlagPass9")
	if st != 200 {
		t.Fatalf("flag user login: %d %v", st, m)
	}
	session, _ := m["sessionToken"].(string)

	// --m2m-reset-ends-sessions: the resetting session ends.
	if st, m := doJSON(t, "PUT", base+"/api/m2m/v1/session/password/actions/reset", bearer, session, `{"oldPassword":"FlagPass9"}`); st != 200 || m["newPassword"] == nil {
		t.Fatalf("reset: %d %v", st, m)
	}
	if st, m := doJSON(t, "GET", base+"/api/m2m/v1/accounts/0000123456-00001", bearer, session, ""); st != 400 ||
		m["errorCode"] != "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid" {
		t.Fatalf("session after reset: %d %v", st, m)
	}

	// --m2m-idle-timeout 1s.
	_, m = login("file-user", "FilePass:1")
	session, _ = m["sessionToken"].(string)
	time.Sleep(1100 * time.Millisecond)
	if st, m := doJSON(t, "GET", base+"/api/m2m/v1/accounts/0000123456-00001", bearer, session, ""); st != 400 ||
		m["errorCode"] != "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired" {
		t.Fatalf("session after idle timeout: %d %v", st, m)
	}

	// --m2m-locked-code.
	for range 5 {
		login("file-user", "Wrong-Pass1")
	}
	if st, m := login("file-user", "FilePass:1"); st != 400 || m["errorCode"] != lockedCode {
		t.Fatalf("locked login: %d %v", st, m)
	}

	stop()
	out := stderr.String()
	if !strings.Contains(out, "file-user") || !strings.Contains(out, "flag-user") {
		t.Errorf("stderr does not name the users: %s", out)
	}
	for _, secret := range []string{"FlagPass9", "FilePass:1"} {
		if strings.Contains(out, secret) {
			t.Fatalf("a password reached stderr: %s", out)
		}
	}
}

func TestRunRejectsBadM2MFlags(t *testing.T) {
	dupFile := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(dupFile, []byte("u:SECRET3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"user without password", []string{"--m2m-user", "u"}, "name:password"},
		{"user empty name", []string{"--m2m-user", ":SECRET1"}, "name:password"},
		{"duplicate user", []string{"--m2m-user", "u:SECRET1", "--m2m-user", "u:SECRET2"}, `user "u" given twice`},
		{"duplicate in file", []string{"--m2m-user", "u:SECRET1", "--m2m-users-file", dupFile}, "twice"},
		{"missing users file", []string{"--m2m-users-file", "/nonexistent/users"}, "nonexistent"},
		{"zero idle timeout", []string{"--m2m-idle-timeout", "0s"}, "m2m-idle-timeout"},
		{"empty locked code", []string{"--m2m-locked-code", " "}, "m2m-locked-code"},
		{"apps keep their wording", []string{"--app", "k"}, "key:secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectRunFails(t, tt.args, tt.want) })
	}
}
