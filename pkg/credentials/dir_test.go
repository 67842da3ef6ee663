package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	clocktesting "k8s.io/utils/clock/testing"
)

// within bounds a wait for something the watch delivers in milliseconds; it is never reached when the
// code works.
const within = 10 * time.Second

func TestDirSourceSeesTenKubeletSwaps(t *testing.T) {
	v := newKubeletVolume(t)
	exp := time.Now().Add(time.Hour)
	v.write(appSecret("token-0", exp))
	// An hour's poll: only the directory watch can see the swaps in time.
	s, err := NewDirSource(v.dir, WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	c, err := s.Current(context.Background())
	if err != nil || c.AccessToken != "token-0" {
		t.Fatalf("initial read: %v %v", c, err)
	}
	for i := 1; i <= 10; i++ {
		want := fmt.Sprintf("token-%d", i)
		v.write(appSecret(want, exp))
		// WaitNewer re-reads once on entry; wait on the holder alone so that only the watch can wake us.
		ctx, cancel := context.WithTimeout(context.Background(), within)
		c, err = s.h.waitNewer(ctx, c.Version)
		cancel()
		if err != nil || c.AccessToken != want {
			t.Fatalf("swap %d: got %v, %v", i, c, err)
		}
	}
}

// TestFileWatchDiesAtSwap shows why the source watches the directory: a watch on the visible file
// follows its symlink into the timestamped directory, which the swap deletes, and the watch is gone.
func TestFileWatchDiesAtSwap(t *testing.T) {
	v := newKubeletVolume(t)
	exp := time.Now().Add(time.Hour)
	v.write(appSecret("token-0", exp))
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	if err := w.Add(filepath.Join(v.dir, "access_token")); err != nil {
		t.Fatal(err)
	}
	s, err := NewDirSource(v.dir, WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	before, _ := s.Current(context.Background())

	v.write(appSecret("token-1", exp))
	deadline := time.After(within)
	for removed := false; !removed; {
		select {
		case e := <-w.Events:
			removed = e.Has(fsnotify.Remove)
		case <-deadline:
			t.Fatal("the file watch saw no removal at the swap")
		}
	}
	if got := w.WatchList(); len(got) != 0 {
		t.Fatalf("file watch still alive after the swap: %v", got)
	}
	// The source, watching the directory, carries on through more swaps.
	watchedToken(t, s, before, "token-1")
	for i := 2; i <= 4; i++ {
		v.write(appSecret(fmt.Sprintf("token-%d", i), exp))
		watchedToken(t, s, before, fmt.Sprintf("token-%d", i))
	}
}

// watchedToken waits, on the holder alone (only the watch can wake it), until s holds token.
func watchedToken(t *testing.T, s *DirSource, from Credential, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for c := from; c.AccessToken != token; {
		var err error
		if c, err = s.h.waitNewer(ctx, c.Version); err != nil {
			t.Fatalf("waiting for %s: %v", token, err)
		}
	}
}

func TestDirSourcePollsWithoutWatch(t *testing.T) {
	v := newKubeletVolume(t)
	fc := clocktesting.NewFakeClock(time.Now())
	exp := fc.Now().Add(time.Hour)
	v.write(appSecret("token-0", exp))
	s, err := NewDirSource(v.dir, WithDirClock(fc), WithPollInterval(3*time.Second), withoutWatch())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	c0, _ := s.Current(context.Background())
	v.write(appSecret("token-1", exp))
	if c, _ := s.h.current(); c.Version != c0.Version {
		t.Fatal("changed without a poll: the test does not isolate the poll")
	}
	for !fc.HasWaiters() {
		time.Sleep(time.Millisecond) // the poll's ticker is being created
	}
	fc.Step(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	c, err := s.h.waitNewer(ctx, c0.Version)
	if err != nil || c.AccessToken != "token-1" {
		t.Fatalf("poll: %v %v", c, err)
	}
}

// TestDirSourceNeverMixesGenerations reads while the writer swaps as fast as it can: every read must
// carry the access token and the session token of one generation.
func TestDirSourceNeverMixesGenerations(t *testing.T) {
	v := newKubeletVolume(t)
	exp := time.Now().Add(time.Hour)
	v.write(sessionSecret("bearer-0", "session-0", exp))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	reads := 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := readGeneration(v.dir)
			if err != nil {
				continue // ..data kept moving for the retry budget: no credential, never a mixed one
			}
			c, err := parse(data)
			if err != nil {
				select {
				case errs <- fmt.Errorf("read %d: %w", reads, err):
				default:
				}
				return
			}
			reads++
			if strings.TrimPrefix(c.AccessToken, "bearer-") != strings.TrimPrefix(c.SessionToken, "session-") {
				select {
				case errs <- fmt.Errorf("mixed generations: %s / %s", c.AccessToken, c.SessionToken):
				default:
				}
				return
			}
		}
	})
	for i := 1; i <= 300; i++ {
		v.write(sessionSecret(fmt.Sprintf("bearer-%d", i), fmt.Sprintf("session-%d", i), exp))
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if reads == 0 {
		t.Fatal("no read completed")
	}
	t.Logf("%d consistent reads during 300 swaps", reads)
}

func TestDirSourceExpiry(t *testing.T) {
	v := newKubeletVolume(t)
	fc := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC))
	v.write(appSecret("token-0", fc.Now().Add(time.Hour)))
	s, err := NewDirSource(v.dir, WithDirClock(fc), WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if _, err := s.Current(context.Background()); err != nil {
		t.Fatal(err)
	}
	fc.Step(time.Hour - time.Millisecond)
	if _, err := s.Current(context.Background()); err != nil {
		t.Fatalf("a millisecond before expiry: %v", err)
	}
	fc.Step(time.Millisecond)
	if c, err := s.Current(context.Background()); !errors.Is(err, ErrExpired) || c.AccessToken != "" {
		t.Fatalf("at expiry: %v %v", c, err)
	}
	// The kubelet's copy lags: the new token shows up in the files later, and Current reads it at once.
	v.write(appSecret("token-1", fc.Now().Add(time.Hour)))
	if c, err := s.Current(context.Background()); err != nil || c.AccessToken != "token-1" {
		t.Fatalf("after the late swap: %v %v", c, err)
	}
}

func TestDirSourceStates(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		token string
		err   error
	}{
		{"empty optional volume", func(*testing.T, string) {}, "", ErrNoCredential},
		{"plain directory without ..data", func(t *testing.T, dir string) {
			for k, v := range appSecret("plain", exp) {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, "plain", nil},
		{"no expiry", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "access_token"), []byte("secret-value"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "", ErrNoCredential},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			s, err := NewDirSource(dir, WithPollInterval(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			c, err := s.Current(context.Background())
			if !errors.Is(err, tc.err) || c.AccessToken != tc.token {
				t.Fatalf("got %v, %v; want %q, %v", c, err, tc.token, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret-value") {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
	if _, err := NewDirSource(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing directory was accepted")
	}
}

// TestDirSourceKeepsLastGoodCredential: a generation without the keys does not take away a token that
// still works.
func TestDirSourceKeepsLastGoodCredential(t *testing.T) {
	v := newKubeletVolume(t)
	v.write(appSecret("token-0", time.Now().Add(time.Hour)))
	s, err := NewDirSource(v.dir, WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	v.write(map[string]string{"token_type": "Bearer"})
	if c, err := s.Refresh(context.Background()); err != nil || c.AccessToken != "token-0" {
		t.Fatalf("got %v, %v", c, err)
	}
}

func TestDirSourceClose(t *testing.T) {
	v := newKubeletVolume(t)
	v.write(appSecret("token-0", time.Now().Add(time.Hour)))
	s, err := NewDirSource(v.dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Current(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.h.waitNewer(context.Background(), c.Version); done <- err }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitNewer after Close: %v", err)
	}
}

// TestTransportWaitsForTheFirstSecret: a pod can start before the operator has written its Secret (an
// optional volume is empty); a request then waits for the first credential instead of failing.
func TestTransportWaitsForTheFirstSecret(t *testing.T) {
	v := newKubeletVolume(t)
	s, err := NewDirSource(v.dir, WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	fc := clocktesting.NewFakeClock(time.Now()) // MaxWait never runs out unless stepped
	up := &upstream{}
	up.set("t1", "")
	srv := httptest.NewServer(up)
	defer srv.Close()
	rec := &recorder{}
	tr := &Transport{Source: s, Base: srv.Client().Transport, MaxWait: time.Minute, Observe: rec.observe, Clock: fc}
	whenWaiting(fc, func() { v.write(appSecret("t1", time.Now().Add(time.Hour))) })
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || rec.kinds() != "wait+newer,request" {
		t.Fatalf("status %d, events %s", resp.StatusCode, rec.kinds())
	}
}
