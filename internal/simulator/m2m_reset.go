package simulator

import (
	"crypto/subtle"
	"net/http"
	"time"
)

// M2MResetAnswer says what becomes of a password reset's answer once the platform has applied the
// reset: the cases where a client cannot learn the new password though it is already in force.
type M2MResetAnswer string

const (
	// M2MResetAnswerNormal sends the new password (after the reset delay, if any).
	M2MResetAnswerNormal M2MResetAnswer = ""
	// M2MResetAnswerDrop cuts the connection without an answer, as a proxy or a crashed backend would:
	// the client sees a reset or closed connection after its request was written.
	M2MResetAnswerDrop M2MResetAnswer = "drop"
	// M2MResetAnswerUnreadable answers 200 with a body that holds no newPassword.
	M2MResetAnswerUnreadable M2MResetAnswer = "unreadable"
	// M2MResetHangUnapplied holds the request unanswered until the client gives up and never applies
	// the reset (a gateway that lost it): the client cannot tell this from a lost answer.
	M2MResetHangUnapplied M2MResetAnswer = "hang-unapplied"
)

func (m *m2m) handleReset(w http.ResponseWriter, r *http.Request) {
	sess := m.authenticated(w, r)
	if sess == nil {
		return
	}
	var body struct {
		OldPassword string `json:"oldPassword"`
	}
	if !decodeM2MBody(w, r, &body) {
		return
	}

	m.mu.Lock()
	hang := m.resetAnswer == M2MResetHangUnapplied
	m.mu.Unlock()
	if hang {
		<-r.Context().Done()
		if rec, ok := w.(*statusRecorder); ok {
			rec.status = statusClientClosed
		}
		return
	}
	password, delay, answer, ok := m.reset(w, sess, body.OldPassword)
	if !ok {
		return
	}
	if delay > 0 {
		// Applied already: a client that gives up now has lost the only copy of the new password.
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch answer {
	case M2MResetAnswerDrop:
		// net/http closes the connection without writing anything for this sentinel panic.
		panic(http.ErrAbortHandler)
	case M2MResetAnswerUnreadable:
		writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"newPassword": password})
}

// reset applies a password reset (or answers the error) and returns the new password, how long to hold
// the answer and what becomes of it.
func (m *m2m) reset(w http.ResponseWriter, sess *m2mSession, oldPassword string) (string, time.Duration, M2MResetAnswer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[sess.user]
	if u == nil || subtle.ConstantTimeCompare([]byte(oldPassword), []byte(u.password)) != 1 {
		// Whether this counts towards the lockout is unknown; it does not here.
		writeM2MError(w, m2mCodePasswordInvalid, "Old password is not valid.")
		return "", 0, "", false
	}
	if !m.touchLocked(sess) {
		writeM2MError(w, m2mCodeSessionInvalid, "Session token is invalid.")
		return "", 0, "", false
	}
	u.password = newM2MPassword()
	if m.onReset != nil {
		m.onReset(m.clock.Now(), sess.user, u.password)
	}
	if m.resetEndsSessions {
		m.endUserSessionsLocked(sess.user)
	}
	return u.password, m.resetDelay, m.resetAnswer, true
}

func (m *m2m) endUserSessionsLocked(user string) {
	for token, s := range m.sessions {
		if s.user == user {
			delete(m.sessions, token)
		}
	}
}
