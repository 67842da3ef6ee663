package credentials

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/utils/clock"
)

// Source yields the current credential of one operator Secret.
type Source interface {
	// Current returns the credential last read. It never returns one past its ExpiresAt: it answers
	// ErrExpired then, and ErrNoCredential (wrapped with which key is wrong) when there is none.
	Current(ctx context.Context) (Credential, error)
	// WaitNewer blocks until the source holds an unexpired credential whose Version differs from
	// version, and returns it; or until ctx ends (returning ctx's error) or the source is closed.
	// WaitNewer(ctx, "") waits for any unexpired credential.
	WaitNewer(ctx context.Context, version string) (Credential, error)
	// Close stops watching; WaitNewer calls then return ErrClosed.
	Close() error
}

// Refresher is a Source that can re-read its Secret on demand (the DirSource). Transport uses it after
// a rejection, before waiting.
type Refresher interface {
	Refresh(ctx context.Context) (Credential, error)
}

// ErrClosed is returned by WaitNewer once the source is closed.
var ErrClosed = errors.New("credentials: source closed")

// holder is the state both sources share: the last credential read, the last problem, and a channel
// closed at every change so that waiters wake.
type holder struct {
	clock clock.PassiveClock

	mu      sync.Mutex
	cur     Credential
	has     bool
	problem error // the last read or parse failure; names keys, never values
	changed chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newHolder(clk clock.PassiveClock) *holder {
	return &holder{clock: clk, changed: make(chan struct{}), closed: make(chan struct{})}
}

// set records c as current; an equal Version keeps the first ObservedAt and wakes no one.
func (h *holder) set(c Credential) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problem = nil
	if h.has && h.cur.Version == c.Version {
		return
	}
	c.ObservedAt = h.clock.Now()
	h.cur, h.has = c, true
	h.wakeLocked()
}

// fail records a problem. The last good credential stays until its own expiry: a half-written or
// unreadable Secret must not take away a token that still works.
func (h *holder) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problem = err
}

// clear forgets the credential (the Secret was deleted).
func (h *holder) clear(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problem = err
	if h.has {
		h.cur, h.has = Credential{}, false
		h.wakeLocked()
	}
}

func (h *holder) wakeLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *holder) close() { h.once.Do(func() { close(h.closed) }) }

func (h *holder) current() (Credential, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, _, err := h.usableLocked()
	return c, err
}

// usableLocked returns the current credential if it may be handed out, and the channel of the next
// change.
func (h *holder) usableLocked() (Credential, <-chan struct{}, error) {
	switch {
	case !h.has && h.problem != nil:
		if errors.Is(h.problem, ErrNoCredential) {
			return Credential{}, h.changed, h.problem
		}
		return Credential{}, h.changed, fmt.Errorf("%w: %w", ErrNoCredential, h.problem)
	case !h.has:
		return Credential{}, h.changed, ErrNoCredential
	case !h.clock.Now().Before(h.cur.ExpiresAt):
		return Credential{}, h.changed, ErrExpired
	}
	return h.cur, h.changed, nil
}

func (h *holder) waitNewer(ctx context.Context, version string) (Credential, error) {
	for {
		h.mu.Lock()
		c, changed, err := h.usableLocked()
		h.mu.Unlock()
		if err == nil && c.Version != version {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return Credential{}, ctx.Err()
		case <-h.closed:
			return Credential{}, ErrClosed
		case <-changed:
		}
	}
}
