package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// TestWaitReadyOnAHostEndingInSlash: envtest's rest.Config Host ends in "/". The probe once asked for
// "//api", which a serving API server answers 404, so no restart was ever seen serving and the
// API-down excuse lasted the whole 90 s wait.
func TestWaitReadyOnAHostEndingInSlash(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	a := &apiServerProc{cfg: &rest.Config{Host: srv.URL + "/"}, readyWithin: 3 * time.Second}
	if err := a.waitReady(t.Context()); err != nil {
		t.Fatalf("a serving API server not seen serving: %v", err)
	}
}
