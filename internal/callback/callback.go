// Package callback serves the two endpoints a person's browser reaches during a CloudAuthorization's
// consent: GET /oauth2/start?state=T (the link in the consent Secret), which puts the start token in a
// cookie of that browser and redirects it to Verizon, and GET /oauth2/callback, where Verizon sends it
// back. The callback accepts a state only from the browser that started (its cookie, see
// internal/consent), only a state the operator issued, once and in time; it exchanges the code, has the
// grant stored (or, when the grant Secret cannot be written, hands it to the reconciler, which stores it
// first) and answers the browser with a short page, never with a token.
//
// It runs on every replica (the Service in front of the manager may route a browser to any of them), or
// on its own in a callback-only process: objects are read past the cache and written conditionally, so
// two replicas, or a replayed request, cannot both use one state. The code exchange is persist-critical
// (the code is spent once sent): it registers with internal/inflight, runs past the request's
// cancellation, and is refused, before the state is spent, once the process has begun shutting down.
package callback

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// Path is where the manager receives the browser after consent; StartPath is where the link starts.
const (
	Path      = consent.CallbackPath
	StartPath = consent.StartPath
)

// Backend is what the handler needs from the CloudAuthorization side.
type Backend interface {
	// Upstream returns the Cloud client and the app credentials of ca; an error means neither is
	// usable now (the reconciler reports why in status).
	Upstream(ctx context.Context, ca *v1alpha1.CloudAuthorization) (*cloudapi.Client, cloudapi.Credentials, error)
	// StoreGrant writes tokens obtained from a code into ca's grant Secret (a refresh token alone when
	// the answer's access token was unusable) and returns the access token's expiry (zero: none stored).
	// The reconciler publishes the access token to the workload's Secret.
	StoreGrant(ctx context.Context, ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received time.Time) (time.Time, error)
	// DescribeStoreFailure describes a failed StoreGrant for a person, briefly.
	DescribeStoreFailure(err error) string
	// KeepGrant takes the tokens a failed StoreGrant could not write: the code is spent and they exist
	// nowhere else, so the reconciler stores them before anything else, for as long as the process lives.
	KeepGrant(ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received time.Time)
}

// Handler serves GET Path.
type Handler struct {
	// Client finds objects by state in the cache (consent.IndexField) and writes status.
	Client    client.Client
	APIReader client.Reader
	Backend   Backend
	Consent   *consent.Store
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// InFlight registers the code exchanges; nil: an untracked tracker of the handler's own.
	InFlight *inflight.Tracker
	// LookupWait bounds how long a state is looked for in the cache, which may lag a URL just written.
	LookupWait time.Duration
	// waiters bounds the requests looking for a state at once, so forged states cannot pile up.
	waiters chan struct{}
}

// NewHandler returns a handler with its bounds set.
func NewHandler(h Handler) *Handler {
	if h.LookupWait <= 0 {
		h.LookupWait = 2 * time.Second
	}
	if h.InFlight == nil {
		h.InFlight = &inflight.Tracker{}
	}
	h.waiters = make(chan struct{}, 8)
	return &h
}

var (
	outcomeBadState = outcome{http.StatusBadRequest, "This authorization link is not valid",
		"It is unknown, was already used, or has expired. Ask for the current consent link (kubectl thingspace consent <name>)."}
	// outcomeOtherBrowser: the callback lacks the cookie the start endpoint set. Nothing was spent.
	outcomeOtherBrowser = outcome{http.StatusBadRequest, "This authorization was started elsewhere",
		"The authorization must be completed in the browser that opened the consent link. Nothing was used up: open the consent link again in this browser."}
	outcomeBusy = outcome{http.StatusServiceUnavailable, "Please try again",
		"The operator could not handle this request right now; reload the page."}
	// outcomeReceived: the grant is in hand but not stored yet. Not an error: consenting again would
	// not help (the operator holds a grant already), and the status is where the rest shows.
	outcomeReceived = outcome{http.StatusAccepted, "Authorization received",
		"Verizon granted access and the operator holds the tokens, but could not store them yet; it keeps trying, and the CloudAuthorization's status says when they are stored. You can close this window. Should the operator restart before then, a new consent link is offered."}
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path && r.URL.Path != StartPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writePage(w, outcome{http.StatusMethodNotAllowed, "Method not allowed", "Use GET."})
		return
	}
	if r.URL.Path == StartPath {
		h.start(w, r)
		return
	}
	writePage(w, h.handle(w, r))
}

func (h *Handler) handle(w http.ResponseWriter, r *http.Request) outcome {
	ctx, q := r.Context(), r.URL.Query()
	state := q.Get("state")
	if !consent.WellFormed(state) {
		return h.reject(ctx, endpointCallback, reasonMalformed, outcomeBadState)
	}
	// The browser binding first: a request without it reads nothing and spends nothing.
	check := consent.CheckCookie(r, state)
	switch check {
	case consent.CookieMissing:
		return h.reject(ctx, endpointCallback, reasonCookieMissing, outcomeOtherBrowser)
	case consent.CookieMismatch:
		return h.reject(ctx, endpointCallback, reasonCookieMismatch, outcomeOtherBrowser)
	}
	hash := consent.Hash(state)
	ca, err := h.find(ctx, hash)
	if err != nil {
		return outcomeBusy
	}
	if ca == nil {
		return h.reject(ctx, endpointCallback, reasonUnknownState, outcomeBadState)
	}
	secure := secureCallback(ca)
	if secure && check != consent.CookieSecure {
		// An https callback is bound by the __Host- cookie only, which no other host can have set.
		return h.reject(ctx, endpointCallback, reasonCookieMismatch, outcomeOtherBrowser)
	}
	logger := log.FromContext(ctx).WithValues("cloudAuthorization", klog.KObj(ca))
	cl, creds, err := h.Backend.Upstream(ctx, ca)
	if err != nil {
		return outcome{http.StatusInternalServerError, "Authorization failed", "The CloudAuthorization's endpoint or app credentials cannot be used; see its status."}
	}

	if code := q.Get("error"); code != "" {
		reason, msg := v1alpha1.ReasonAuthorizationFailed, "Verizon answered the consent with an error"
		if code == "access_denied" {
			reason, msg = v1alpha1.ReasonAccessDenied, "The person refused consent (access_denied)"
		}
		// The reconciler offers a new link once the state is gone (it watches for that).
		if err := h.spend(ctx, ca, hash, func(st *v1alpha1.CloudAuthorizationStatus, now time.Time) error {
			fail(ca, st, now, reason, msg)
			return nil
		}); err != nil {
			return spendFailed(err)
		}
		http.SetCookie(w, consent.ExpiredCookie(state, check == consent.CookieSecure))
		h.Recorder.Eventf(ca, nil, corev1.EventTypeWarning, reason, "Authorize", "%s; a new consent link follows in Secret %s", msg, v1alpha1.ConsentSecretName(ca))
		logger.Info("Consent refused; a new consent link follows", "reason", reason)
		return outcome{http.StatusOK, "Access was not granted", "Nothing was stored. To try again, ask for the new consent link (kubectl thingspace consent <name>)."}
	}

	code := q.Get("code")
	if code == "" {
		return outcome{http.StatusBadRequest, "Authorization failed", "The request carries neither a code nor an error."}
	}
	// Registered before the state is spent: once shutdown has begun nothing is spent, and the person
	// reloads against a replica (or a manager) that can finish.
	end, ok := h.InFlight.Begin()
	if !ok {
		return outcomeBusy
	}
	defer end()
	// The state is spent before the code is used: a replay, or a second replica, finds it gone.
	if err := h.spend(ctx, ca, hash, func(st *v1alpha1.CloudAuthorizationStatus, now time.Time) error {
		consent.Clear(st)
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionAuthorized, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonAuthorizationPending, Message: consent.ExchangingMessage, ObservedGeneration: ca.Generation,
			LastTransitionTime: metav1.NewTime(renewal.Truncate(now))})
		return nil
	}); err != nil {
		return spendFailed(err)
	}
	http.SetCookie(w, consent.ExpiredCookie(state, check == consent.CookieSecure))
	// The code is single-use: once it is sent, the answer must be stored even if the browser goes away
	// or the manager shuts down. The client bounds the request itself.
	return h.exchange(context.WithoutCancel(ctx), ca, cl, creds, code)
}

// exchange trades the code and stores the answer; a 2xx carrying a refresh token is always stored.
func (h *Handler) exchange(ctx context.Context, ca *v1alpha1.CloudAuthorization, cl *cloudapi.Client, creds cloudapi.Credentials, code string) outcome {
	logger := log.FromContext(ctx).WithValues("cloudAuthorization", klog.KObj(ca))
	tokens, err := cl.Exchange(ctx, creds, code, ca.Spec.CallbackURL)
	received := h.Clock.Now()
	if err != nil && tokens.RefreshToken == "" {
		reason := v1alpha1.ReasonCodeExchangeFailed
		if cloudapi.ClientRejected(err) {
			reason = v1alpha1.ReasonCredentialsRejected
		}
		h.recordFailure(ctx, ca, reason, "Exchanging the authorization code failed: "+err.Error())
		logger.Info("Code exchange failed", "error", err.Error())
		return outcome{http.StatusBadGateway, "Authorization failed", "Verizon did not accept the authorization. A new consent link follows (kubectl thingspace consent <name>)."}
	}
	if err != nil {
		// Issue 8 scenario 7: the answer's access token is unusable, its refresh token is the grant.
		logger.Info("Code exchange answered without a usable access token; storing its refresh token", "error", err.Error())
	}
	expiresAt, serr := h.Backend.StoreGrant(ctx, ca, tokens, received)
	if serr != nil {
		// The grant is real: asking for consent again would throw it away. The reconciler stores it
		// once the Secret can be written, and its status says so meanwhile.
		why := h.Backend.DescribeStoreFailure(serr)
		h.Backend.KeepGrant(ca, tokens, received)
		h.Recorder.Eventf(ca, nil, corev1.EventTypeWarning, v1alpha1.ReasonGrantNotStored, "Authorize",
			"Consent received, but the tokens could not be written to Secret %s yet (%s); the operator keeps them and retries", v1alpha1.GrantSecretName(ca), why)
		logger.Info("Storing the tokens failed; the reconciler stores them once it can", "error", why)
		return outcomeReceived
	}
	h.warnLifetime(ca, tokens)
	if expiresAt.IsZero() {
		h.Recorder.Eventf(ca, nil, corev1.EventTypeNormal, v1alpha1.EventAuthorized, "Authorize",
			"Consent received; the refresh token was written to Secret %s, an access token follows with the first refresh", v1alpha1.GrantSecretName(ca))
	} else {
		h.Recorder.Eventf(ca, nil, corev1.EventTypeNormal, v1alpha1.EventAuthorized, "Authorize",
			"Consent received; the grant was written to Secret %s, the access token (valid until %s) follows in Secret %s", v1alpha1.GrantSecretName(ca), expiresAt.UTC().Format(time.RFC3339), ca.Spec.SecretName)
	}
	logger.Info("Consent received; the grant is written", "secret", klog.KRef(ca.Namespace, v1alpha1.GrantSecretName(ca)), "expiresAt", expiresAt.UTC())
	return outcome{http.StatusOK, "Authorization complete", "The operator stored the tokens. You can close this window."}
}

// warnLifetime says when the stored lifetime is not the one Verizon announced.
func (h *Handler) warnLifetime(ca *v1alpha1.CloudAuthorization, t cloudapi.Tokens) {
	if t.LifetimeAssumed {
		h.Recorder.Eventf(ca, nil, corev1.EventTypeWarning, v1alpha1.EventLifetimeAssumed, "Authorize",
			"The token answer had no expires_in; the access token is assumed to live %s", t.ExpiresIn)
	}
	if t.LifetimeCapped {
		h.Recorder.Eventf(ca, nil, corev1.EventTypeWarning, v1alpha1.EventLifetimeCapped, "Authorize",
			"The token answer announced a lifetime beyond %s; it was capped", t.ExpiresIn)
	}
}

// find returns the CloudAuthorization whose live consent has the state hash. The cache may not show a
// consent written a moment ago, so a miss is retried briefly, by a bounded number of requests at once.
func (h *Handler) find(ctx context.Context, hash string) (*v1alpha1.CloudAuthorization, error) {
	const step = 100 * time.Millisecond
	waiting := false
	defer func() {
		if waiting {
			<-h.waiters
		}
	}()
	for tries := int(h.LookupWait / step); ; tries-- {
		list := &v1alpha1.CloudAuthorizationList{}
		if err := h.Client.List(ctx, list, client.MatchingFields{consent.IndexField: hash}); err != nil {
			return nil, err
		}
		if len(list.Items) == 1 {
			return &list.Items[0], nil
		}
		if len(list.Items) > 1 || tries <= 0 {
			return nil, nil
		}
		if !waiting {
			select {
			case h.waiters <- struct{}{}:
				waiting = true
			default:
				return nil, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(step):
		}
	}
}

func (h *Handler) spend(ctx context.Context, ca *v1alpha1.CloudAuthorization, hash string, change func(*v1alpha1.CloudAuthorizationStatus, time.Time) error) error {
	return consent.Spend(ctx, h.Client, h.APIReader, h.Clock.Now, ca, hash, change)
}

func spendFailed(err error) outcome {
	if errors.Is(err, consent.ErrStateGone) {
		return outcomeBadState
	}
	return outcomeBusy
}

// fail records a failed consent in st; the state is gone (the reconciler issues a new link).
func fail(ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus, now time.Time, reason, msg string) {
	msg += "; a new consent link follows in Secret " + v1alpha1.ConsentSecretName(ca)
	consent.Clear(st)
	at := metav1.NewTime(renewal.Truncate(now))
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionAuthorized, Status: metav1.ConditionFalse,
		Reason: reason, Message: msg, ObservedGeneration: ca.Generation, LastTransitionTime: at})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: reason, Message: "No refresh token: " + msg, ObservedGeneration: ca.Generation, LastTransitionTime: at})
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, ca.Generation, now)
}

// recordFailure records a failure after the state was spent. A write that fails leaves the status
// without a consent all the same, and the reconciler issues a new link.
func (h *Handler) recordFailure(ctx context.Context, ca *v1alpha1.CloudAuthorization, reason, msg string) {
	for range 3 {
		fresh := &v1alpha1.CloudAuthorization{}
		if err := h.APIReader.Get(ctx, client.ObjectKeyFromObject(ca), fresh); err != nil || fresh.UID != ca.UID {
			return
		}
		st := fresh.Status.DeepCopy()
		fail(fresh, st, h.Clock.Now(), reason, msg)
		if err := consent.PatchStatus(ctx, h.Client, fresh, st); !apierrors.IsConflict(err) {
			if err == nil {
				h.Recorder.Eventf(fresh, nil, corev1.EventTypeWarning, reason, "Authorize", "%s", msg)
			}
			return
		}
	}
}

// secureCallback reports whether ca's callback is https (a __Host- cookie binds its consents).
func secureCallback(ca *v1alpha1.CloudAuthorization) bool {
	u, err := url.Parse(ca.Spec.CallbackURL)
	return err != nil || u.Scheme != "http" // anything but plain http is held to the strict cookie
}
