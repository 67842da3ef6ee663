package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A login is two writes, the Secret's and then the status's: a process killed between them (a SIGKILL,
// a lost lease) leaves a Secret holding a session its status does not know of. A new leader then took a
// handover for still due (status.loginTokenDigest named the replaced token) or a re-login for due (the
// old nextKeepAliveTime), and logged in again for a valid session (the chaos suite, seed 33). As for the
// apps' expiry (ExpiryProvenanceAnnotation), the Secret's write carries what the status write records
// (SessionLoginAnnotation), bound to the Secret's data, and a pass whose status lacks that login adopts
// it.

// HeldLogin is the login a session's Secret records.
type HeldLogin struct {
	At time.Time
	// TokenDigest and TokenExpiresAt are the app token's the session logged in with (the Secret's
	// access_token and access_token_expires_at as the login wrote them).
	TokenDigest    string
	TokenExpiresAt time.Time
}

// SessionLoginValue is the SessionLoginAnnotation a login at at writes with the Secret's data.
func SessionLoginValue(session, accessToken, expiresAt string, at time.Time) string {
	stamp := at.UTC().Truncate(time.Second).Format(time.RFC3339)
	return stamp + "/" + sessionLoginBinding(session, accessToken, expiresAt, stamp)
}

func sessionLoginBinding(session, accessToken, expiresAt, stamp string) string {
	sum := sha256.Sum256([]byte("thingspace-operator/session-login/v1\x00" + session + "\x00" + accessToken + "\x00" + expiresAt + "\x00" + stamp))
	return hex.EncodeToString(sum[:])
}

// ParseHeldLogin reads a Secret's SessionLoginAnnotation against its data. false: none, or not written
// with this data (the app token was published over it since, or someone edited the Secret).
func ParseHeldLogin(value, session, accessToken, expiresAt string) (HeldLogin, bool) {
	stamp, binding, ok := strings.Cut(value, "/")
	if !ok || session == "" || accessToken == "" || binding != sessionLoginBinding(session, accessToken, expiresAt, stamp) {
		return HeldLogin{}, false
	}
	at, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return HeldLogin{}, false
	}
	exp, err := time.Parse(time.RFC3339, expiresAt)
	if err != nil {
		return HeldLogin{}, false
	}
	return HeldLogin{At: at, TokenDigest: TokenDigest(accessToken), TokenExpiresAt: exp}, true
}

// AdoptHeldLogin records in st a login its Secret holds and st does not know of (a later one than
// st.lastLoginTime), as the lost status write would have; true when it did. The login also reset the
// username's failure count on the platform, and, while an unanswered reset stood, it can only have been
// the one check with the password the reset would have replaced: it logged in, so the reset was not
// applied.
func AdoptHeldLogin(st *v1alpha1.M2MSessionStatus, h HeldLogin, spec v1alpha1.M2MSessionSpec) bool {
	if st.LastLoginTime != nil && !st.LastLoginTime.Time.Before(h.At) {
		return false
	}
	st.LastLoginTime = metaTime(h.At)
	st.LoginTokenDigest, st.LoginTokenExpiresAt = h.TokenDigest, metaTime(h.TokenExpiresAt)
	st.NextKeepAliveTime = metaTime(h.At.Add(KeepAliveInterval(spec)))
	st.FailedAttempts, st.RejectedTokenDigest, st.RejectedCredentialsVersion = 0, "", ""
	if st.LoginFailuresObservedAt == nil || st.LoginFailuresObservedAt.Time.Before(h.At) {
		st.ConsecutiveLoginFailures, st.LoginFailuresObservedAt = 0, metaTime(h.At)
	}
	if u := st.PasswordResetUnanswered; u != nil && !u.Lost && !h.At.Before(u.SentAt.Time) {
		st.PasswordResetUnanswered = nil
	}
	return true
}
