package thingspace

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// ResetUnanswered is true exactly when the reset may have been applied without the caller learning
// the new password.
func TestResetUnanswered(t *testing.T) {
	cases := map[string]struct {
		h    http.HandlerFunc
		want bool
	}{
		"connection dropped after the request": {func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, true},
		"200 without newPassword":              {respond(200, `{"status":"ok"}`), true},
		"timeout waiting for the answer": {func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		}, true},
		"503":                    {respond(503, `{}`), false},
		"old password refused":   {respond(400, `{"errorCode":"UnifiedWebService.INPUT_INVALID.Password.Invalid"}`), false},
		"session expired":        {respond(400, `{"errorCode":"UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"}`), false},
		"gateway refused bearer": {respond(401, `{"fault":{"code":"900901"}}`), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, tc.h)
			c, _ := newTestClient(t, srv, WithRequestTimeout(300*time.Millisecond))
			_, err := c.ResetPassword(context.Background(), testToken, testSession, testUWSPass)
			if err == nil {
				t.Fatal("no error")
			}
			if got := ResetUnanswered(err); got != tc.want {
				t.Fatalf("ResetUnanswered(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
	if ResetUnanswered(upstream.TransportError("thingspace", EndpointResetPassword, context.DeadlineExceeded)) {
		t.Error("a failure before the request was written counts as unanswered")
	}
	if ResetUnanswered(&upstream.Error{API: API, Endpoint: EndpointLogin, Unanswered: true}) {
		t.Error("an unanswered login counts as an unanswered reset")
	}
}
