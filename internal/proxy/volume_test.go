package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// volume updates a directory as the kubelet's AtomicWriter updates a Secret volume: the payload in a
// new "..<timestamp>" directory, a "..data_tmp" symlink to it renamed over "..data", one
// "<key> -> ..data/<key>" symlink per key, the previous generation removed.
type volume struct {
	t   *testing.T
	dir string
	gen string
}

var generation atomic.Int64

func newVolume(t *testing.T) *volume { return &volume{t: t, dir: t.TempDir()} }

func (v *volume) write(data map[string]string) {
	v.t.Helper()
	gen := filepath.Join(v.dir, fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), generation.Add(1)))
	must(v.t, os.Mkdir(gen, 0o755))
	for k, val := range data {
		must(v.t, os.WriteFile(filepath.Join(gen, k), []byte(val), 0o644))
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	must(v.t, os.Symlink(filepath.Base(gen), tmp))
	must(v.t, os.Rename(tmp, filepath.Join(v.dir, "..data")))
	for k := range data {
		if _, err := os.Lstat(filepath.Join(v.dir, k)); os.IsNotExist(err) {
			must(v.t, os.Symlink(filepath.Join("..data", k), filepath.Join(v.dir, k)))
		}
	}
	if v.gen != "" {
		must(v.t, os.RemoveAll(filepath.Join(v.dir, v.gen)))
	}
	v.gen = filepath.Base(gen)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func rfc3339ms(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func appData(token string, exp time.Time) map[string]string {
	return map[string]string{"access_token": token, "token_type": "Bearer", "expires_at": rfc3339ms(exp)}
}

func sessionData(token, session string, exp time.Time) map[string]string {
	return map[string]string{"access_token": token, "session_token": session, "access_token_expires_at": rfc3339ms(exp)}
}

// startSidecar runs the sidecar from its flags (on free loopback ports) until the test ends, and
// returns its proxy and health base URLs. The log goes to logw.
func startSidecar(t *testing.T, logw io.Writer, args ...string) (proxyURL, healthURL string) {
	t.Helper()
	cfg, err := ParseFlags(append([]string{"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", "--allow-insecure-upstream"}, args...), io.Discard)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, cfg, slog.New(slog.NewJSONHandler(logw, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + s.ProxyAddr.String(), "http://" + s.HealthAddr.String()
}

// eventually polls cond every 10 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}
