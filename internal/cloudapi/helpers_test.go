package cloudapi

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
)

const (
	testKey          = "cloud-app-key"
	testSecret       = "Cl0udS3cret_value"
	testAccessToken  = "at-7c1d2e3f-access"
	testRefreshToken = "rt-9a8b7c6d-refresh"
	testCode         = "code-41f2e8-authz"
	testRedirect     = "https://operator.example/Callback/CaseMatters?x=1"
)

var (
	testCreds = Credentials{Key: testKey, Secret: testSecret}
	testBasic = base64.StdEncoding.EncodeToString([]byte(testKey + ":" + testSecret))
	testNow   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// newTestClient returns a client for srv with the API's base path, an observer and a fake clock
// at testNow.
func newTestClient(t *testing.T, srv *httptest.Server, opts ...Option) (*Client, *upstreamtest.Recorder) {
	t.Helper()
	rec := &upstreamtest.Recorder{}
	all := append([]Option{WithObserver(rec.Observe), WithClock(testingclock.NewFakePassiveClock(testNow))}, opts...)
	c, err := New(srv.URL+"/cloud/1", srv.Client(), all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, rec
}

// seenRequest is what the fake server received.
type seenRequest struct {
	method, path, contentType, authorization, accept, userAgent string
	rawBody                                                     string
	form                                                        url.Values
}

func capture(seen *seenRequest, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		*seen = seenRequest{
			method:        r.Method,
			path:          r.URL.Path,
			contentType:   r.Header.Get("Content-Type"),
			authorization: r.Header.Get("Authorization"),
			accept:        r.Header.Get("Accept"),
			userAgent:     r.Header.Get("User-Agent"),
			rawBody:       string(b),
			form:          form,
		}
		next(w, r)
	}
}
