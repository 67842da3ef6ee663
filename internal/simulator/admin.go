package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Admin endpoints: unauthenticated controls for local tests and demos. They
// are outside /api and /cloud, so they are never faulted, delayed or counted.

func (s *Server) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /admin/stats/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("PUT /admin/faults", s.handlePutFaults)
	mux.HandleFunc("PUT /admin/apps/{key}", s.handlePutApp)
	mux.HandleFunc("DELETE /admin/apps/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if !s.ts.hasApp(key) {
			adminError(w, http.StatusNotFound, "no such app")
			return
		}
		s.RemoveApp(key)
		w.WriteHeader(http.StatusNoContent)
	})
}

// handlePutFaults replaces the faults wholesale (PUT semantics: omitted
// fields become zero) and echoes what is now in force.
func (s *Server) handlePutFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeAdminJSON(w, r, &f); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Unlike SetFaults, reject instead of clamping: a harness that asks for
	// rate 2 has a bug it should hear about.
	if err := f.Validate(); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Server) handlePutApp(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Secret string `json:"secret"`
	}
	if err := decodeAdminJSON(w, r, &body); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if strings.Contains(r.PathValue("key"), ":") {
		// Basic auth splits key:secret at the first colon, so such a key could
		// never authenticate.
		adminError(w, http.StatusBadRequest, "app key must not contain ':'")
		return
	}
	if body.Secret == "" {
		adminError(w, http.StatusBadRequest, "secret must not be empty")
		return
	}
	s.SetApp(r.PathValue("key"), body.Secret)
	w.WriteHeader(http.StatusNoContent)
}

func decodeAdminJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
