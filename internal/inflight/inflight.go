// Package inflight tracks the upstream calls whose answers must be persisted before the process exits: a
// password reset (Verizon's new password exists nowhere else), a refresh-token rotation and an
// authorization-code exchange (the old grant is spent).
//
// controller-runtime cancels reconciles on SIGTERM and, when the leader lease is lost, stops at once with
// no graceful period. Such a call therefore runs on a context detached from the reconcile's and registers
// here; the manager's main waits for the tracker to drain after the manager stops, and nothing new may
// start once draining has begun.
package inflight

import (
	"context"
	"sync"
)

// Tracker counts persist-critical calls in flight. The zero value is ready to use.
type Tracker struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // closed when n drops to 0 while draining
}

// Begin registers one call. ok is false once Drain has begun: the caller must not start the call. end
// must be called exactly once when the call's answer is stored (or known lost).
func (t *Tracker) Begin() (end func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return func() {}, false
	}
	t.n++
	var once sync.Once
	return func() { once.Do(t.done) }, true
}

func (t *Tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// Draining reports whether Drain has begun.
func (t *Tracker) Draining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

// InFlight is the number of registered calls not yet ended.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Drain refuses new calls and waits until the registered ones have ended or ctx is done. It reports
// whether everything ended.
func (t *Tracker) Drain(ctx context.Context) bool {
	t.mu.Lock()
	t.draining = true
	if t.n == 0 {
		t.mu.Unlock()
		return true
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}
