package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/credops/thingspace-operator/internal/renewal"
)

// A handover (issue 11 §1): an app with a standby key set publishes a fresh token of its other key set
// while the token it replaces stays valid until it expires. Whether the platform ties a session to the
// token that logged in is not documented, so a session that logged in with the replaced token logs in
// again with the new one while the old is still valid, and the Secret changes both headers in one write:
// a workload never pairs a new Bearer with a session that may only work with the old one, and the old
// pair keeps working for the rest of the window either way. Under one key set the new token only
// arrives once the old one has expired (or was revoked): that stays as before (no login of its own; a
// tied platform's SessionToken error brings the one login).

// TokenDigest identifies a token in status without revealing it: its SHA-256, hex.
func TokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// HandoverDue reports whether the app's key set changed under the session: the app has a standby key
// set and holds another token than the one the session logged in with, which is still valid. A status
// without a recorded login token (an older operator's) never asks for one.
func HandoverDue(f SessionFacts) bool {
	st := f.Status
	return f.HasSession && f.AppHasStandby && st.LoginTokenDigest != "" && st.LoginTokenExpiresAt != nil &&
		f.AppTokenDigest != "" && f.AppTokenDigest != st.LoginTokenDigest && f.Now.Before(st.LoginTokenExpiresAt.Time)
}

// SessionHandoverRetry plans the retry of a handover login that failed transiently: as SessionRetry (a
// whole second, rounded up), but
// pulled in so that several tries land before the token the session logged in with expires (past it the
// handover is moot and the session carries on as under one key set).
func SessionHandoverRetry(b renewal.Backoff, failures int32, rnd float64, retryAfter time.Duration, f SessionFacts) time.Time {
	within := KeepAliveInterval(f.Spec)
	if e := f.Status.LoginTokenExpiresAt; e != nil {
		if left := e.Sub(f.Now); left > 0 && left < within {
			within = left
		}
	}
	return wholeSecondUp(f.Now.Add(b.RetryDelay(failures, rnd, retryAfter, within)))
}
