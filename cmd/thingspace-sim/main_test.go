package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunServesAndShutsDown starts the binary's run loop on a free port,
// reads the advertised address, gets a token, and stops it via the context
// (what SIGTERM does in main).
func TestRunServesAndShutsDown(t *testing.T) {
	appsFile := filepath.Join(t.TempDir(), "apps")
	if err := os.WriteFile(appsFile, []byte("# comment\n\nfile-app:file:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--app", "k:s", "--apps-file", appsFile, "--token-lifetime", "90s"}, pw, &stderr)
		pw.Close()
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading address line: %v (stderr %s)", err, stderr.String())
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Fatalf("address line %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }() // nothing else is expected on stdout

	for _, cred := range [][2]string{{"k", "s"}, {"file-app", "file:secret"}} {
		req, _ := http.NewRequest("POST", base+"/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(cred[0], cred[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"expires_in":90`) {
			t.Fatalf("app %s: status %d body %s", cred[0], resp.StatusCode, body)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not shut down")
	}
	if strings.Contains(stderr.String(), "file:secret") || strings.Contains(stderr.String(), "k:s") {
		t.Fatalf("a secret reached stderr: %s", stderr.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	dupFile := filepath.Join(t.TempDir(), "apps")
	if err := os.WriteFile(dupFile, []byte("k:SECRET3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"app without secret", []string{"--app", "k"}, "key:secret"},
		{"app empty key", []string{"--app", ":SECRET1"}, "key:secret"},
		{"duplicate app", []string{"--app", "k:SECRET1", "--app", "k:SECRET2"}, "twice"},
		{"duplicate in file", []string{"--app", "k:SECRET1", "--apps-file", dupFile}, "twice"},
		{"fault status", []string{"--fault-status", "500"}, "status"},
		{"fault rate", []string{"--fault-rate", "1.5"}, "rate"},
		{"negative latency", []string{"--latency", "-1s"}, "latency"},
		{"zero lifetime", []string{"--token-lifetime", "0s"}, "token-lifetime"},
		{"negative expiry grace", []string{"--token-expiry-grace", "-1s"}, "token-expiry-grace"},
		{"stray argument", []string{"serve"}, "unexpected"},
		{"missing apps file", []string{"--apps-file", "/nonexistent/apps"}, "nonexistent"},
		{"bad listen", []string{"--listen", "not-an-address"}, "not-an-address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectRunFails(t, tt.args, tt.want) })
	}
}

// expectRunFails runs the binary's loop with args and insists that it fails
// before printing its address, with an error or usage mentioning want, and
// without echoing any value containing "SECRET".
func expectRunFails(t *testing.T, args []string, want string) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(context.Background(), args, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error()+stderr.String(), want) {
		t.Fatalf("err %v (stderr %q), want mention of %q", err, stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Fatalf("printed %q to stdout before failing", stdout.String())
	}
	if strings.Contains(err.Error()+stderr.String(), "SECRET") {
		t.Fatalf("secret echoed: %v / %s", err, stderr.String())
	}
}
