package simulator

import (
	"net/http"
	"strings"
	"testing"
)

func TestCloudTokenShapes(t *testing.T) {
	for shape, want := range map[CloudTokenShape]string{
		CloudShapeNoExpiresIn:         "",
		CloudShapeNullExpiresIn:       `"expires_in":null`,
		CloudShapeZeroExpiresIn:       `"expires_in":0`,
		CloudShapeFractionalExpiresIn: `"expires_in":3599.5`,
		CloudShapeHugeExpiresIn:       `"expires_in":2147483647`,
		CloudShapeBadAccessToken:      `"access_token":"not usable"`,
	} {
		t.Run(string(shape), func(t *testing.T) {
			f := newCloudFixture(t, nil)
			first := f.grant()
			f.srv.SetCloudTokenShape(shape)
			w := f.refresh(first.RefreshToken)
			body := w.Body.String()
			if w.Code != http.StatusOK || !strings.Contains(body, `"refresh_token":"`) || !strings.Contains(body, want) {
				t.Fatalf("status %d, body %s, want %s", w.Code, body, want)
			}
			if (shape == CloudShapeNoExpiresIn) == strings.Contains(body, "expires_in") {
				t.Fatalf("body %s", body)
			}
			// The grant was processed: the presented refresh token is spent.
			oauthErrorOf(t, f.refresh(first.RefreshToken), http.StatusUnauthorized, "invalid_grant")
			f.srv.SetCloudTokenShape(CloudShapeNormal)
			_ = tokensOf(t, f.exchange(f.code(cloudID, cloudCallback)))
		})
	}
}

func TestCloudInjectedTokenFailures(t *testing.T) {
	f := newCloudFixture(t, nil)
	tok := f.grant()
	f.srv.FailCloudTokenRequests(2, http.StatusForbidden, "")
	for range 2 {
		w := f.refresh(tok.RefreshToken)
		if m := decodeMap(t, w.Body.Bytes()); w.Code != http.StatusForbidden || m["error"] != nil {
			t.Fatalf("status %d, body %s: want a 403 without an OAuth2 code", w.Code, w.Body)
		}
	}
	// Not processed: the refresh token still works, once.
	_ = tokensOf(t, f.refresh(tok.RefreshToken))
	f.srv.FailCloudTokenRequests(1, http.StatusBadRequest, "invalid_request")
	oauthErrorOf(t, f.exchange(f.code(cloudID, cloudCallback)), http.StatusBadRequest, "invalid_request")
	// Unauthenticated requests are not counted against the switch.
	f.srv.FailCloudTokenRequests(1, http.StatusServiceUnavailable, "")
	oauthErrorOf(t, f.cloudToken(basic(cloudID, "wrong"), nil), http.StatusUnauthorized, "invalid_client")
	if w := f.exchange(f.code(cloudID, cloudCallback)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", w.Code)
	}
}
