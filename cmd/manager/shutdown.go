package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/credops/thingspace-operator/internal/inflight"
)

// runAndDrain runs start (the manager's Start) until it returns, then waits up to drainTimeout for the
// persist-critical upstream calls registered with tracker to store their answers, and refuses new ones.
//
// Start returns on SIGTERM after its graceful period, and at once when the leader lease is lost
// (controller-runtime then skips the graceful period). Either way a rotated refresh token or a reset
// password may still be on its way to its Secret in a goroutine detached from the stopped reconcile;
// exiting would lose it, and with it the grant or the UWS account's password. The error is Start's,
// joined with one saying how many calls were abandoned when the bound ran out.
func runAndDrain(ctx context.Context, start func(context.Context) error, tracker *inflight.Tracker, drainTimeout time.Duration, log logr.Logger) error {
	startErr := start(ctx)
	if startErr != nil {
		log.Error(startErr, "The manager stopped with an error")
	}
	pending := tracker.InFlight()
	if pending > 0 {
		log.Info("Waiting for in-flight upstream answers to be stored", "inFlight", pending, "timeout", drainTimeout)
	}
	// Not ctx: it is the signal handler's, already cancelled on SIGTERM.
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	began := time.Now()
	if !tracker.Drain(drainCtx) {
		left := tracker.InFlight()
		err := fmt.Errorf("%d of %d in-flight upstream answers not stored within %s", left, pending, drainTimeout)
		log.Error(err, "Exiting with upstream answers unstored", "inFlight", pending, "abandoned", left)
		return errors.Join(startErr, err)
	}
	if pending > 0 {
		log.Info("In-flight upstream answers stored", "inFlight", pending, "waited", time.Since(began).Round(time.Millisecond))
	}
	return startErr
}

// leaseTimings are the leader-election timings. The defaults are cert-manager's: a busy 2-core node can
// stall the leader for many seconds, and a leader that misses its renew deadline exits.
type leaseTimings struct {
	duration, renewDeadline, retryPeriod time.Duration
}

// validate applies client-go's rules, so that a wrong flag is an error at start instead of a panic.
func (l leaseTimings) validate() error {
	switch {
	case l.retryPeriod <= 0:
		return errors.New("--leader-elect-retry-period must be positive")
	case l.renewDeadline <= time.Duration(1.2*float64(l.retryPeriod)):
		return errors.New("--leader-elect-renew-deadline must be more than 1.2 times --leader-elect-retry-period")
	case l.duration <= l.renewDeadline:
		return errors.New("--leader-elect-lease-duration must be longer than --leader-elect-renew-deadline")
	}
	return nil
}
