package simulator

import "net/http"

// Whether Verizon ties an M2M session to the app token that logged in is not documented (issue 11 §1).
// The simulator models both: untied (the default, as before) a session works with any live Bearer; tied
// it works only with the Bearer of its login and ends when that token expires or is revoked, like an
// idled-out session (SessionToken.Expired). A call with another live Bearer is refused with
// SessionToken.Invalid and leaves the session alone.

// bearerFitsLocked reports whether a call carrying bearer may use sess.
func (m *m2m) bearerFitsLocked(sess *m2mSession, bearer string) bool {
	return !m.tied || sess.bearer == bearer
}

// bearerDeadLocked reports whether sess ends because its login's Bearer did (tied only). Lock order:
// m2m.mu, then the token store's.
func (m *m2m) bearerDeadLocked(sess *m2mSession) bool {
	return m.tied && !m.validBearer(sess.bearer)
}

// SetM2MSessionTiedToBearer switches Config.M2MSessionTiedToBearer; it applies to live sessions too
// (each remembers the Bearer it logged in with either way).
func (s *Server) SetM2MSessionTiedToBearer(on bool) {
	s.m2m.mu.Lock()
	defer s.m2m.mu.Unlock()
	s.m2m.tied = on
}

// registerM2MTiedAdmin adds PUT /admin/m2m/session-tied {"tied":bool}.
func (s *Server) registerM2MTiedAdmin(mux *http.ServeMux) {
	mux.HandleFunc("PUT /admin/m2m/session-tied", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Tied *bool `json:"tied"`
		}
		if err := decodeAdminJSON(w, r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if body.Tied == nil {
			adminError(w, http.StatusBadRequest, `body must be {"tied":true} or {"tied":false}`)
			return
		}
		s.SetM2MSessionTiedToBearer(*body.Tied)
		w.WriteHeader(http.StatusNoContent)
	})
}
