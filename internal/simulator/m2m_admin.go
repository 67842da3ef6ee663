package simulator

import (
	"fmt"
	"net/http"
	"time"
)

// --- in-process and admin controls ---

func (m *m2m) setUser(name, password string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.users[name]; u != nil {
		u.password = password
		return
	}
	m.users[name] = &m2mUser{password: password}
}

func (m *m2m) unlock(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[name]
	if u == nil {
		return false
	}
	u.locked, u.failures = false, 0
	return true
}

func (m *m2m) user(name string) (M2MUserInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[name]
	if u == nil {
		return M2MUserInfo{}, false
	}
	info := M2MUserInfo{Locked: u.locked, ConsecutiveFailures: u.failures, Logins: u.logins, Password: u.password}
	for token, s := range m.sessions {
		if s.user == name && m.liveLocked(token) != nil {
			info.ActiveSessions++
		}
	}
	return info, true
}

func (m *m2m) expireAll() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	n := 0
	for token, s := range m.sessions {
		if m.liveLocked(token) != nil {
			s.expired, s.expiredAt = true, now
			n++
		}
	}
	return n
}

func (m *m2m) active() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for token := range m.sessions {
		if m.liveLocked(token) != nil {
			n++
		}
	}
	return n
}

// SetM2MUser creates a UWS user or sets its password. Lock state, failure
// count and live sessions are left as they are.
func (s *Server) SetM2MUser(name, password string) { s.m2m.setUser(name, password) }

// SetM2MRejectBearers makes the gateway answer 401 (900901) to every M2M call, whatever Bearer it
// carries, until switched off.
func (s *Server) SetM2MRejectBearers(on bool) {
	s.m2m.mu.Lock()
	defer s.m2m.mu.Unlock()
	s.m2m.rejectBearers = on
}

// SetM2MResetDelay holds every password-reset answer for d after the reset has been applied (0: none).
func (s *Server) SetM2MResetDelay(d time.Duration) {
	s.m2m.mu.Lock()
	defer s.m2m.mu.Unlock()
	s.m2m.resetDelay = max(d, 0)
}

// SetM2MResetAnswer decides what becomes of every password reset's answer once the reset is applied
// (M2MResetAnswerNormal: it is sent).
func (s *Server) SetM2MResetAnswer(a M2MResetAnswer) {
	s.m2m.mu.Lock()
	defer s.m2m.mu.Unlock()
	s.m2m.resetAnswer = a
}

// UnlockM2MUser unlocks a user and clears its consecutive-failure count, as
// Verizon support would. It reports false for an unknown user.
func (s *Server) UnlockM2MUser(name string) bool { return s.m2m.unlock(name) }

// M2MUser returns the state of a user, including its current password.
func (s *Server) M2MUser(name string) (M2MUserInfo, bool) { return s.m2m.user(name) }

// ExpireM2MSessions ends every live session as if it had idled out: the next
// use answers SessionToken.Expired. It returns how many were live.
func (s *Server) ExpireM2MSessions() int { return s.m2m.expireAll() }

// ActiveM2MSessions returns how many sessions are live (not idled out, logged
// out, ended by a reset or expired by ExpireM2MSessions).
func (s *Server) ActiveM2MSessions() int { return s.m2m.active() }

// registerM2MAdmin adds the /admin/m2m/* controls (see admin.go for the
// conventions: unauthenticated, never faulted or counted).
func (s *Server) registerM2MAdmin(mux *http.ServeMux) {
	mux.HandleFunc("PUT /admin/m2m/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Password string `json:"password"`
		}
		if err := decodeAdminJSON(w, r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if body.Password == "" {
			adminError(w, http.StatusBadRequest, "password must not be empty")
			return
		}
		s.SetM2MUser(r.PathValue("name"), body.Password)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/m2m/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		info, ok := s.M2MUser(r.PathValue("name"))
		if !ok {
			adminError(w, http.StatusNotFound, "no such user")
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("POST /admin/m2m/users/{name}/unlock", func(w http.ResponseWriter, r *http.Request) {
		if !s.UnlockM2MUser(r.PathValue("name")) {
			adminError(w, http.StatusNotFound, "no such user")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /admin/m2m/reset-delay", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Delay string `json:"delay"`
		}
		if err := decodeAdminJSON(w, r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		d, err := parseDuration("delay", body.Delay)
		if err == nil && d < 0 {
			err = fmt.Errorf("delay %v is negative", d)
		}
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetM2MResetDelay(d)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /admin/m2m/reset-answer", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Answer M2MResetAnswer `json:"answer"`
		}
		if err := decodeAdminJSON(w, r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		switch body.Answer {
		case M2MResetAnswerNormal, M2MResetAnswerDrop, M2MResetAnswerUnreadable, M2MResetHangUnapplied:
		default:
			adminError(w, http.StatusBadRequest, `answer must be "", "drop", "unreadable" or "hang-unapplied"`)
			return
		}
		s.SetM2MResetAnswer(body.Answer)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /admin/m2m/reject-bearers", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reject bool `json:"reject"`
		}
		if err := decodeAdminJSON(w, r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetM2MRejectBearers(body.Reject)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /admin/m2m/sessions/expire", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"expired": s.ExpireM2MSessions()})
	})
	mux.HandleFunc("GET /admin/m2m/sessions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"active": s.ActiveM2MSessions()})
	})
}
