package proxy

import (
	"errors"

	"github.com/credops/thingspace-operator/pkg/credentials"
)

// Observe is the credentials transport's Observe hook: it turns the library's events into the
// proxy's counters. Events carry no token; only their kind, reason and durations are used.
func (m *Metrics) Observe(e credentials.Event) {
	switch e.Kind {
	case credentials.EventRejected:
		m.Rejected(e.Reason)
	case credentials.EventRetry:
		m.Retried()
	case credentials.EventWait:
		m.Waited(e.Waited, e.Newer)
	}
}

// NoCredential reports whether a transport error means that no valid credential is held: the
// Secret is missing or unreadable, or what it holds has expired and nothing newer came in time.
func NoCredential(err error) bool {
	return errors.Is(err, credentials.ErrNoCredential) || errors.Is(err, credentials.ErrExpired)
}
