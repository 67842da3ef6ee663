package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/credops/thingspace-operator/internal/inflight"
)

// lines is a logr sink that keeps what was logged.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.all = append(l.all, prefix+" "+args)
	}, funcr.Options{})
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// errLeaseLost is what controller-runtime's Start returns when the lease is lost: at once, with no
// graceful period, the reconcilers' goroutines still running.
var errLeaseLost = errors.New("leader election lost")

// Issue 8 scenario 6: losing the leader lease made the manager's Start return at once and main exit,
// and a persist-critical call still in flight (a Cloud refresh whose rotated refresh token was not
// stored yet, a reset password) died with the process. main now waits for the tracker to drain.
func TestLostLeaseWaitsForInFlightAnswersToBeStored(t *testing.T) {
	var tracker inflight.Tracker
	var stored atomic.Bool
	var log lines
	start := func(ctx context.Context) error {
		// A reconcile began a refresh on a detached context and registered it.
		end, ok := tracker.Begin()
		if !ok {
			t.Error("Begin refused before the manager stopped")
		}
		go func() {
			defer end()
			time.Sleep(300 * time.Millisecond) // the upstream answers, then the Secret is written
			stored.Store(true)
		}()
		return errLeaseLost
	}
	err := runAndDrain(t.Context(), start, &tracker, 30*time.Second, log.logger())
	if !stored.Load() {
		t.Fatal("runAndDrain returned before the in-flight answer was stored: the process would exit and lose it")
	}
	if !errors.Is(err, errLeaseLost) {
		t.Errorf("err = %v, want the lost lease (the process must exit non-zero)", err)
	}
	if _, ok := tracker.Begin(); ok {
		t.Error("a new persist-critical call was accepted after the manager stopped")
	}
	if !strings.Contains(log.String(), `"inFlight"=1`) {
		t.Errorf("the log does not say how many calls were waited for:\n%s", log.String())
	}
}

// The wait is bounded: a call that never ends does not keep the process alive past drainTimeout, and
// the exit says so.
func TestDrainIsBounded(t *testing.T) {
	var tracker inflight.Tracker
	var log lines
	start := func(ctx context.Context) error {
		if _, ok := tracker.Begin(); !ok { // never ended
			t.Error("Begin refused")
		}
		return nil // SIGTERM: a clean stop
	}
	began := time.Now()
	err := runAndDrain(t.Context(), start, &tracker, 200*time.Millisecond, log.logger())
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("runAndDrain took %v with a 200ms bound", took)
	}
	if err == nil {
		t.Error("an abandoned in-flight call was not reported as an error")
	}
	if !strings.Contains(log.String(), `"inFlight"=1`) {
		t.Errorf("the log does not say how many calls were abandoned:\n%s", log.String())
	}
}

// Nothing in flight: a clean stop stays clean and quick.
func TestCleanStopWithNothingInFlight(t *testing.T) {
	var tracker inflight.Tracker
	var log lines
	if err := runAndDrain(t.Context(), func(context.Context) error { return nil }, &tracker, time.Minute, log.logger()); err != nil {
		t.Errorf("err = %v", err)
	}
	if !tracker.Draining() {
		t.Error("the tracker still accepts calls after the manager stopped")
	}
}

// Issue 8 scenario 6: the lease timings are flags; wrong ones are refused at start, as client-go would
// refuse them later.
func TestLeaseTimingsValidate(t *testing.T) {
	for _, tc := range []struct {
		l  leaseTimings
		ok bool
	}{
		{leaseTimings{60 * time.Second, 40 * time.Second, 15 * time.Second}, true}, // the defaults
		{leaseTimings{15 * time.Second, 10 * time.Second, 2 * time.Second}, true},  // controller-runtime's
		{leaseTimings{40 * time.Second, 40 * time.Second, 15 * time.Second}, false},
		{leaseTimings{60 * time.Second, 18 * time.Second, 15 * time.Second}, false},
		{leaseTimings{60 * time.Second, 40 * time.Second, 0}, false},
	} {
		if err := tc.l.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v", tc.l, err)
		}
	}
}
