package proxy

import (
	"context"
	"log/slog"

	"github.com/credops/thingspace-operator/pkg/credentials"
)

// Tracker follows the source's credential for the credential metrics and logs each change (its
// kind and expiry, never a token). Readiness asks the source itself (Ready), so an expiry with
// nothing newer makes the proxy unready at once, without the tracker having to notice.
type Tracker struct {
	src credentials.Source
	m   *Metrics
	log *slog.Logger
}

// NewTracker returns a Tracker of src recording into m.
func NewTracker(src credentials.Source, m *Metrics, log *slog.Logger) *Tracker {
	return &Tracker{src: src, m: m, log: orDiscard(log)}
}

// Run records every new credential until ctx ends or the source is closed.
func (t *Tracker) Run(ctx context.Context) {
	version := ""
	for {
		c, err := t.src.WaitNewer(ctx, version)
		if err != nil {
			return
		}
		version = c.Version
		t.m.Held(c.ObservedAt, c.ExpiresAt)
		t.log.Info("credential changed", "session", c.IsSession(), "expiresAt", c.ExpiresAt)
	}
}

// Ready returns nil while the source holds a credential that has not expired.
func (t *Tracker) Ready(ctx context.Context) error {
	_, err := t.src.Current(ctx)
	return err
}
