package main

import (
	"fmt"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// Lost grants and passwords: whose loss it is.
//
// A Verizon Cloud refresh rotates the refresh token and an M2M reset changes the password, both at once
// and upstream; the new value exists only in the answer (thingspace-api.md: "a lost response means a
// lost password"). When the simulator applied one and its answer reached no manager, nothing the
// operator does can bring the value back: that loss is physics, reported apart with its cause, never
// counted as the operator's and never silently dropped. When the answer did reach a manager (it was
// answered 200, or refused after the rotation), the value was in the operator's hands and its loss is a
// violation, whatever happened next (a kill before the Secret was written included).

// lossCause says why a rotation or reset's value was lost.
type lossCause int

const (
	// lossOperator: the answer reached a manager, or no applied rotation explains the loss.
	lossOperator lossCause = iota
	// lossKilled: the simulator held the applied answer and the manager waiting for it was SIGKILLed.
	lossKilled
	// lossReset: the simulator applied the call, then reset the connection (a drop).
	lossReset
	// lossTimedOut: the simulator held the applied answer past the manager's upstream timeout.
	lossTimedOut
	// lossRefused: the upstream refused a refresh token nobody had rotated (revoked, expired).
	lossRefused
	// lossAbandoned: the manager gave up on the held answer before its timeout with no SIGKILL (a
	// SIGTERM's shutdown, an exit on a lost lease): the operator's.
	lossAbandoned
)

func (c lossCause) String() string {
	switch c {
	case lossKilled:
		return "manager SIGKILLed while its answer was held"
	case lossReset:
		return "connection reset after it was applied"
	case lossTimedOut:
		return "answer held past the manager's timeout"
	case lossRefused:
		return "refused by the upstream unrotated"
	case lossAbandoned:
		return "answer abandoned by the manager before its timeout (no SIGKILL)"
	}
	return "the operator's"
}

// physics reports whether the loss is the upstream's answer never reaching a manager.
func (c lossCause) physics() bool { return c == lossKilled || c == lossReset || c == lossTimedOut }

// killSlack is how long after a call's end a kill still explains an answer it never read: the
// simulator notices the dead connection a moment after the kill.
const killSlack = time.Second

// undelivered is why c's answer reached no client, lossOperator when it did.
func undelivered(c harness.LedgerCall, kills []time.Time) lossCause {
	switch {
	case c.Chaos == "drop" || c.Status == 0:
		return lossReset
	case c.Status != 499:
		return lossOperator // answered
	}
	for _, k := range kills {
		if !k.Before(c.At) && !k.After(c.Done.Add(killSlack)) {
			return lossKilled
		}
	}
	if c.Done.Sub(c.At) < upstreamTimeout-timeoutSlack {
		return lossAbandoned
	}
	return lossTimedOut
}

// timeoutSlack is how much earlier than the manager's upstream timeout the simulator may see a client
// that timed out go (the timeout runs from before the request is written).
const timeoutSlack = 500 * time.Millisecond

// applied reports whether the simulator carried a call out: answered 200, or given a chaos answer
// (drop, hold), which comes only after the call was applied. Faults and refusals change nothing.
func applied(c harness.LedgerCall) bool {
	return c.Chaos == "drop" || c.Chaos == "hold" || (c.Chaos == "" && c.Status == 200)
}

// rotation is the call that rotated refresh token rt: the first applied call presenting it (later
// ones are reuses, refused, and say nothing about where the new token went).
func rotation(led harness.Ledger, rt string) (harness.LedgerCall, bool) {
	if rt == "" {
		return harness.LedgerCall{}, false
	}
	for _, c := range led.Calls {
		if c.Used == rt && applied(c) {
			return c, true
		}
	}
	return harness.LedgerCall{}, false
}

// grantLoss is whose loss a lost grant is, rt the last refresh token its Secret held, with the call
// that rotated it (zero when none did) and a line saying why.
func grantLoss(led harness.Ledger, rt string, kills []time.Time) (lossCause, harness.LedgerCall, string) {
	c, ok := rotation(led, rt)
	if !ok {
		for _, r := range led.Calls {
			if rt != "" && r.Used == rt && (r.Status == 400 || r.Status == 401) && r.Chaos == "" {
				return lossRefused, harness.LedgerCall{}, fmt.Sprintf("its last refresh token refused (%d) though never rotated", r.Status)
			}
		}
		return lossOperator, harness.LedgerCall{}, "its last refresh token was never rotated nor refused"
	}
	cause := undelivered(c, kills)
	return cause, c, fmt.Sprintf("its last refresh token rotated by a call answered %d: %s", c.Status, cause)
}

// lostGrants are the CloudAuthorizations whose grant the run saw lost: one a sample saw not
// Authorized, or whose grant Secret held no live refresh token at the last sample. Mid-run, a sample
// may find a grant's token dead while its refresh's answer is on the way to the Secret; the last one
// is taken once every grant was live again (allLive), or the settle gave up. Nothing is asked after
// sampling: the managers keep refreshing while the verdict is drawn, and a look then found the token
// the last sample saw rotated by a refresh the ledger (read before) did not hold yet, counting a
// healthy grant lost "never rotated nor refused" (the short run at 4b68c13).
func lostGrants(clouds []string, samples []sample) map[string]bool {
	lost := map[string]bool{}
	for _, s := range samples {
		for _, ca := range s.unauthorized {
			lost[ca] = true
		}
	}
	if len(samples) == 0 {
		return lost
	}
	last := samples[len(samples)-1]
	for i, ca := range clouds {
		if i >= len(last.grants) || !last.grants[i] {
			lost[ca] = true
		}
	}
	return lost
}

// passwordLoss is whose loss a reset's password is, when it never reached the credentials Secret.
func passwordLoss(led harness.Ledger, r harness.LedgerReset, kills []time.Time) lossCause {
	c, ok := resetCall(led, r)
	if !ok {
		return lossOperator
	}
	return undelivered(c, kills)
}

// sigkills is every moment a replica was SIGKILLed.
func (e *env) sigkills() []time.Time {
	var out []time.Time
	for _, r := range e.mgrs {
		r.mu.Lock()
		out = append(out, r.sigkills...)
		r.mu.Unlock()
	}
	return out
}

// passwordReached reports whether a reset's password reached the operator for good: a credentials
// Secret was seen holding it, or a later call presented it (a login, or a reset as the old password),
// which only a manager that had kept or read it could do (the Secret may hold it between two samples).
func passwordReached(led harness.Ledger, r harness.LedgerReset, seen map[string]bool) bool {
	if seen[r.Password] {
		return true
	}
	for _, c := range led.Calls {
		if c.Subject == "m2m:"+r.User && c.Used == r.Password && c.At.After(r.At) {
			return true
		}
	}
	return false
}

// unsettledResets are the applied resets whose password has neither reached the operator (a Secret
// seen with it, a later call presenting it) nor been lost by physics. The sampling after the faults
// goes on while there are any: a reset answered just before the faults end has its password written a
// moment later, or, when that write failed (an API outage at the end), by the manager's background
// retry about a second after the API server is back; the short run's sampling ended 0.5 s after the
// faults (seed 1 at a0fdd3f: a reset answered 1.6 s before the end was counted lost with 2.1 s to
// land). A password the operator did lose stays unsettled, and counts, once the settle's deadline is
// out.
func unsettledResets(led harness.Ledger, seen map[string]map[string]bool, kills []time.Time) []harness.LedgerReset {
	var out []harness.LedgerReset
	for _, r := range led.Resets {
		if !passwordReached(led, r, seen[r.User]) && !passwordLoss(led, r, kills).physics() {
			out = append(out, r)
		}
	}
	return out
}
