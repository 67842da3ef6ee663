package simulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Answers the contract allows but the happy path never shows, switched on by tests (issue 8
// scenarios 7, 10 and 18): an error status without a known OAuth2 code, and successful token
// answers whose expires_in is missing, null, zero, fractional or absurd, or whose access token is
// unusable while the rotated refresh token is fine.

// CloudTokenShape changes how a successful token answer is written. The grant is processed as
// usual: a refresh token presented is rotated whatever the shape.
type CloudTokenShape string

const (
	// CloudShapeNormal is the documented answer.
	CloudShapeNormal CloudTokenShape = ""
	// CloudShapeNoExpiresIn leaves expires_in out (RFC 6749 only recommends it).
	CloudShapeNoExpiresIn CloudTokenShape = "no-expires-in"
	// CloudShapeNullExpiresIn sends "expires_in": null.
	CloudShapeNullExpiresIn CloudTokenShape = "null-expires-in"
	// CloudShapeZeroExpiresIn sends "expires_in": 0.
	CloudShapeZeroExpiresIn CloudTokenShape = "zero-expires-in"
	// CloudShapeFractionalExpiresIn sends the lifetime minus half a second, as a fraction.
	CloudShapeFractionalExpiresIn CloudTokenShape = "fractional-expires-in"
	// CloudShapeHugeExpiresIn sends 2147483647 seconds (68 years).
	CloudShapeHugeExpiresIn CloudTokenShape = "huge-expires-in"
	// CloudShapeBadAccessToken sends an access token a client cannot use (it holds a space), with a
	// good rotated refresh token.
	CloudShapeBadAccessToken CloudTokenShape = "bad-access-token"
)

// cloudQuirks are the switches; guarded by cloud.mu.
type cloudQuirks struct {
	shape CloudTokenShape
	// failN token requests from authenticated clients are answered with failStatus and, when
	// failCode is set, that OAuth2 error code; nothing is redeemed or rotated.
	failN      int
	failStatus int
	failCode   string
}

// SetCloudTokenShape makes every following successful token answer take shape.
func (s *Server) SetCloudTokenShape(shape CloudTokenShape) {
	s.cloud.mu.Lock()
	defer s.cloud.mu.Unlock()
	s.cloud.quirks.shape = shape
}

// FailCloudTokenRequests answers the next n token requests of authenticated clients with status
// and, unless code is empty, the OAuth2 error code; the grant is not processed (a refresh token
// presented stays valid). n <= 0 turns it off.
func (s *Server) FailCloudTokenRequests(n, status int, code string) {
	s.cloud.mu.Lock()
	defer s.cloud.mu.Unlock()
	s.cloud.quirks.failN, s.cloud.quirks.failStatus, s.cloud.quirks.failCode = max(n, 0), status, code
}

// injectedFailure writes the next switched-on failure, if any, and reports whether it did.
func (c *cloud) injectedFailure(w http.ResponseWriter) bool {
	c.mu.Lock()
	q := &c.quirks
	if q.failN <= 0 {
		c.mu.Unlock()
		return false
	}
	q.failN--
	status, code := q.failStatus, q.failCode
	c.mu.Unlock()
	if code == "" {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, status, map[string]string{"error_description": "The request was refused."})
		return true
	}
	writeOAuthError(w, status, code, "The request was refused.")
	return true
}

// writeTokens writes a successful token answer in the switched-on shape.
func (c *cloud) writeTokens(w http.ResponseWriter, t cloudTokens) {
	c.mu.Lock()
	shape := c.quirks.shape
	c.mu.Unlock()
	noStore(w)
	if shape == CloudShapeNormal {
		writeJSON(w, http.StatusOK, t)
		return
	}
	body := map[string]any{"access_token": t.AccessToken, "refresh_token": t.RefreshToken, "token_type": t.TokenType, "expires_in": t.ExpiresIn}
	switch shape {
	case CloudShapeNoExpiresIn:
		delete(body, "expires_in")
	case CloudShapeNullExpiresIn:
		body["expires_in"] = nil
	case CloudShapeZeroExpiresIn:
		body["expires_in"] = 0
	case CloudShapeFractionalExpiresIn:
		body["expires_in"] = json.Number(formatFraction(t.ExpiresIn))
	case CloudShapeHugeExpiresIn:
		body["expires_in"] = 2147483647
	case CloudShapeBadAccessToken:
		body["access_token"] = "not usable"
	}
	writeJSON(w, http.StatusOK, body)
}

// formatFraction is s seconds minus half a second, as a JSON number.
func formatFraction(s int64) string {
	if s <= 0 {
		return "0.5"
	}
	return strconv.FormatInt(s-1, 10) + ".5"
}
