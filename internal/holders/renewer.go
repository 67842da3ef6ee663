package holders

import (
	"context"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// Renewer keeps the registry in step with what the manager holds: every RenewEvery it renews the
// shard's heartbeat and deletes the Leases of keys let go. It runs on the leader only (only the
// leader holds tokens) and leaves the Leases in place when it stops: a standby taking over is the same
// holder, and a manager gone for good stops counting once its heartbeat is older than its Duration.
type Renewer struct {
	Registry *Registry
	// Held returns the keys held now (tokenbroker.Broker.HeldKeys).
	Held func() []tokenbroker.Key
	// Ticker drives the loop; nil means the real clock.
	Ticker clock.WithTicker
	Log    logr.Logger
}

// NeedLeaderElection is true: a standby holds nothing.
func (Renewer) NeedLeaderElection() bool { return true }

// Start runs until ctx ends.
func (w Renewer) Start(ctx context.Context) error {
	clk := w.Ticker
	if clk == nil {
		clk = clock.RealClock{}
	}
	// The heartbeat first, so that the keys' Leases a previous leader left count at once; the keys not
	// held any more are let go at the first tick, once the reconcilers have held theirs again.
	if err := w.Registry.heartbeat(ctx, 0); err != nil {
		w.Log.Info("Could not renew the holder registry", "error", err.Error())
	}
	t := clk.NewTicker(w.Registry.renewEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			if err := w.Registry.Sync(ctx, w.Held()); err != nil {
				// The next tick retries; Leases outlive two missed renewals.
				w.Log.Info("Could not renew the holder registry", "error", err.Error())
			}
		}
	}
}
