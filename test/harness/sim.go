package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// Routes as the simulator counts them in its stats.
const (
	RouteToken  = "POST /api/ts/v1/oauth2/token"
	RouteRevoke = "POST /api/ts/v1/oauth2/revoke"
)

// SimConfig starts a thingspace-sim process.
type SimConfig struct {
	// Binary is the thingspace-sim executable.
	Binary string
	// Args are passed after "--listen 127.0.0.1:0", e.g. "--app", "key:secret", "--token-lifetime", "4s".
	Args []string
	// LogPath receives the simulator's stderr (appended); empty means a new temporary file.
	LogPath string
	// StartTimeout bounds the wait for the listening line; zero means 30s.
	StartTimeout time.Duration

	// CloudApps registers Verizon Cloud clients (--cloud-app): client id → secret and callback URL.
	CloudApps map[string]CloudApp
	// CloudAccessTokenLifetime, CloudRefreshTokenLifetime and CloudCodeLifetime set the simulator's
	// Verizon Cloud lifetimes when non-zero (its defaults: 1h, 14 days, 5m).
	CloudAccessTokenLifetime, CloudRefreshTokenLifetime, CloudCodeLifetime time.Duration
	// CloudDenyConsent starts the simulator refusing consent at authorize (--cloud-deny-consent).
	CloudDenyConsent bool
	// CloudTokenDelay holds every Cloud token response this long after processing it (--cloud-token-delay).
	CloudTokenDelay time.Duration
	// Ledger turns the simulator's ledger on (--ledger; see Sim.Ledger).
	Ledger bool
}

// Sim is a running thingspace-sim process. Its admin endpoints are neither faulted nor counted.
type Sim struct {
	// URL is the base URL, e.g. http://127.0.0.1:40123: the endpoint of a ThingSpaceApp.
	URL string
	// LogPath is the file its stderr goes to.
	LogPath string

	proc *process
	http *http.Client
}

// Start runs the simulator and waits until it prints its URL.
func (c SimConfig) Start(ctx context.Context) (*Sim, error) {
	log, err := openLog(c.LogPath, "thingspace-sim-*.log")
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	args := slices.Concat([]string{"--listen", "127.0.0.1:0"}, c.cloudArgs(), c.Args)
	p, err := startProcess("thingspace-sim", c.Binary, args, nil, log, w)
	w.Close()
	if err != nil {
		r.Close()
		log.Close()
		return nil, err
	}
	// The first stdout line is "listening on http://<addr>"; anything after it is kept in the log.
	urlc := make(chan string, 1)
	go func() {
		// Runs until the simulator exits and closes its stdout; it owns the parent's log descriptor.
		defer log.Close()
		defer r.Close()
		sc := bufio.NewScanner(r)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first {
				first = false
				if u, ok := strings.CutPrefix(line, "listening on "); ok {
					urlc <- strings.TrimSpace(u)
					continue
				}
			}
			fmt.Fprintln(log, line)
		}
		_, _ = io.Copy(io.Discard, r)
	}()

	timeout := c.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fail := func(why string) (*Sim, error) {
		_ = p.stop()
		return nil, fmt.Errorf("thingspace-sim %s; log %s:\n%s", why, log.Name(), readTail(log.Name(), 4096))
	}
	select {
	case u := <-urlc:
		return &Sim{URL: u, LogPath: log.Name(), proc: p, http: &http.Client{Timeout: 10 * time.Second}}, nil
	case <-p.done:
		return fail(fmt.Sprintf("exited before listening (%v)", p.err))
	case <-timer.C:
		return fail("printed no URL within " + timeout.String())
	case <-ctx.Done():
		return fail("start cancelled: " + ctx.Err().Error())
	}
}

// Stop ends the simulator (SIGTERM, then SIGKILL after a grace period).
func (s *Sim) Stop() error { return s.proc.stop() }

// Stats returns the request counts: route ("POST /api/ts/v1/oauth2/token") → status ("200") → count.
func (s *Sim) Stats() (map[string]map[string]int, error) {
	var st simulator.Stats
	if err := s.admin(http.MethodGet, "/admin/stats", nil, http.StatusOK, &st); err != nil {
		return nil, err
	}
	if st.Requests == nil {
		st.Requests = map[string]map[string]int{}
	}
	return st.Requests, nil
}

// Count returns how many requests to route were answered with status.
func (s *Sim) Count(route string, status int) (int, error) {
	st, err := s.Stats()
	if err != nil {
		return 0, err
	}
	return st[route][strconv.Itoa(status)], nil
}

// Total returns how many requests to route were seen, whatever their status.
func (s *Sim) Total(route string) (int, error) {
	st, err := s.Stats()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range st[route] {
		n += c
	}
	return n, nil
}

// TokenRequests returns how many token requests were seen, whatever their status.
func (s *Sim) TokenRequests() (int, error) { return s.Total(RouteToken) }

// RevokeRequests returns how many revoke requests were seen, whatever their status.
func (s *Sim) RevokeRequests() (int, error) { return s.Total(RouteRevoke) }

// ResetStats zeroes the request counts.
func (s *Sim) ResetStats() error {
	return s.admin(http.MethodPost, "/admin/stats/reset", nil, http.StatusNoContent, nil)
}

// RequestToken asks the simulator for the app's token as a client would (the request is counted in
// Stats). Within a token's lifetime the simulator answers every client of a key with the same token, so
// this tells which token is live upstream.
func (s *Sim) RequestToken(ctx context.Context, key, secret string) (token string, expiresIn int, err error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/ts/v1/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(key+":"+secret)))
	resp, err := s.http.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("token request: status %d", resp.StatusCode)
	}
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", 0, fmt.Errorf("token response: %w", err)
	}
	return body.AccessToken, body.ExpiresIn, nil
}

func (s *Sim) admin(method, path string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}
