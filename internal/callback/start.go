package callback

import (
	"net/http"

	"github.com/credops/thingspace-operator/internal/consent"
)

var (
	outcomeBadLink = outcome{http.StatusBadRequest, "This consent link is not valid",
		"It is unknown, was already used, or has expired. Ask for the current consent link (kubectl thingspace consent <name>)."}
	outcomeUnusable = outcome{http.StatusInternalServerError, "Authorization cannot start",
		"The CloudAuthorization's endpoint or app credentials cannot be used; see its status."}
)

// start serves the consent link: it finds the live consent of the start token, binds this browser to
// it with a cookie holding the token, and sends the browser to Verizon with the state derived from the
// token. Nothing is spent: the link may be opened again (each opening binds that browser), until the
// callback spends the state. The answer carries no body: its Location holds the state.
func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok := r.URL.Query().Get("state")
	if !consent.WellFormed(tok) {
		writePage(w, h.reject(ctx, endpointStart, reasonMalformed, outcomeBadLink))
		return
	}
	state := consent.State(tok)
	ca, err := h.find(ctx, consent.Hash(state))
	if err != nil {
		writePage(w, outcomeBusy)
		return
	}
	now := h.Clock.Now()
	if ca == nil || !consent.Pending(&ca.Status, now) {
		writePage(w, h.reject(ctx, endpointStart, reasonUnknownState, outcomeBadLink))
		return
	}
	cl, creds, err := h.Backend.Upstream(ctx, ca)
	if err != nil {
		writePage(w, outcomeUnusable)
		return
	}
	// The link's token must not travel on to Verizon in a Referer, nor the redirect be cached.
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	http.SetCookie(w, consent.Cookie(tok, secureCallback(ca), ca.Status.ConsentExpiresAt.Time, now))
	w.Header().Set("Location", cl.AuthorizeURL(creds.Key, ca.Spec.CallbackURL, state, ca.Spec.DeviceID))
	w.WriteHeader(http.StatusSeeOther)
}
