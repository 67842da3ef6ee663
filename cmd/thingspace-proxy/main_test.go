package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// run binds both ports, prints the one line callers read the ports from, and returns nil after a
// clean shutdown when its context ends (SIGTERM).
func TestRunPrintsTheAddressesAndShutsDown(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--credentials-dir=" + t.TempDir(), "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"}, pw, io.Discard)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var proxyURL, healthURL string
	if f := strings.Fields(line); len(f) == 5 && f[0] == "listening" && f[3] == "health" {
		proxyURL, healthURL = f[2], f[4]
	} else {
		t.Fatalf("stdout line %q", line)
	}
	resp, err := http.Get(healthURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz on an empty volume: %d, want 503", resp.StatusCode)
	}
	if !strings.HasPrefix(proxyURL, "http://127.0.0.1:") {
		t.Errorf("proxy URL %s", proxyURL)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		nil, // no credential source
		{"--credentials-dir=/nonexistent-dir-for-test"},
		{"--credentials-dir=/tmp", "--upstream=http://thingspace.example"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
