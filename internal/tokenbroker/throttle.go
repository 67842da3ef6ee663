package tokenbroker

import (
	"errors"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// Retry-After per key (issue 14): an answer for a key that carried a Retry-After (429 or 503 while the
// gateway throttles, or any other refusal that says when to come back) binds every caller of that key,
// not only the one that got it. Until then Fetch, Rotate and Revoke send nothing for the key and
// return a ThrottledError; the callers wait for its time. The chaos suite caught a session's broker
// refresh and a second app of a shared key calling inside the Retry-After the first app's fetch got.

// ThrottledError is returned, without an upstream call, for a key the upstream asked not to be called
// before Until. Its message carries the time only.
type ThrottledError struct {
	Until time.Time
}

func (e *ThrottledError) Error() string {
	return "thingspace token: nothing sent, the upstream asked not to be called for this app key before " +
		e.Until.UTC().Format(time.RFC3339) + " (Retry-After)"
}

// ThrottledUntil says whether err is (or wraps) a ThrottledError, and until when.
func ThrottledUntil(err error) (time.Time, bool) {
	var e *ThrottledError
	if errors.As(err, &e) {
		return e.Until, true
	}
	return time.Time{}, false
}

// NotBefore returns the time before which the upstream asked not to be called for key (zero: none
// known). It is kept until the whole second it falls in has passed: a retry slot in status is that
// second, rounded up, and the policy matches the slot against it to retry at the instant itself
// (policy.DecideApp).
func (b *Broker) NotBefore(key Key) time.Time {
	until, _ := b.throttled(key, b.clock.Now())
	return until
}

// throttled returns the key's Retry-After and whether it is still ahead of now; the entry goes once
// its second has passed, so a key costs nothing for it outside a Retry-After.
func (b *Broker) throttled(key Key, now time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.notBefore[key]
	if !ok {
		return time.Time{}, false
	}
	if !now.Before(endOfSecond(until)) {
		delete(b.notBefore, key)
		return time.Time{}, false
	}
	return until, now.Before(until)
}

// endOfSecond is t rounded up to the whole second.
func endOfSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}

// checkThrottle is the gate before every upstream call for key.
func (b *Broker) checkThrottle(key Key) error {
	if until, ok := b.throttled(key, b.clock.Now()); ok {
		return &ThrottledError{Until: until}
	}
	return nil
}

// noteOutcome records what an upstream call for key ended with: a Retry-After binds the key from the
// moment the answer arrived; a transient (or unclassified) failure marks the key's last call as failed,
// a success clears it.
func (b *Broker) noteOutcome(key Key, e *entry, err error) {
	if err == nil {
		e.failed = false
		return
	}
	if k := upstream.KindOf(err); k == upstream.Transient || k == upstream.Unknown {
		e.failed = true
	}
	ra, ok := upstream.RetryAfterOf(err)
	if !ok {
		return
	}
	now := b.clock.Now()
	until := now.Add(ra)
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, t := range b.notBefore { // few entries: only keys inside a Retry-After
		if !now.Before(endOfSecond(t)) {
			delete(b.notBefore, k)
		}
	}
	if until.After(b.notBefore[key]) {
		b.notBefore[key] = until
	}
}

// LastCallFailed reports whether the last upstream call for key failed transiently (no answer, a
// 5xx, a 429): the upstream may be in trouble, and a rotation that revokes first should wait.
func (b *Broker) LastCallFailed(key Key) bool {
	e := b.acquire(key)
	defer b.release(key, e)
	return e.failed
}
