package controller

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
)

// CallbackPath is where the manager receives the browser after consent.
const CallbackPath = "/oauth2/callback"

// DefaultStateTTL bounds how long an authorization URL (its state) is accepted.
const DefaultStateTTL = 15 * time.Minute

// indexAuthorizationState indexes CloudAuthorizations by the state of their live authorization URL.
const indexAuthorizationState = "status.authorizationURL.state"

// stateBytes of randomness make a state unguessable (256 bits).
const stateBytes = 32

// Consent issues authorization URLs. A state is single-use: status holds the only copy the callback
// accepts, and the callback removes it before exchanging the code.
type Consent struct {
	// TTL bounds how long a state is accepted.
	TTL time.Duration
}

// Ensure keeps a live authorization URL in st: a new one when there is none, it has expired, or the
// spec or client key it was made for changed.
func (c *Consent) Ensure(st *v1alpha1.CloudAuthorizationStatus, cl *cloudapi.Client, clientID string, spec *v1alpha1.CloudAuthorizationSpec, now time.Time) error {
	if st.AuthorizationURL != "" && st.AuthorizationURLExpiresAt != nil && now.Before(st.AuthorizationURLExpiresAt.Time) &&
		withoutState(st.AuthorizationURL) == withoutState(cl.AuthorizeURL(clientID, spec.CallbackURL, "", spec.DeviceID)) {
		return nil
	}
	return c.Issue(st, cl, clientID, spec, now)
}

// Issue puts a new authorization URL with a fresh state in st.
func (c *Consent) Issue(st *v1alpha1.CloudAuthorizationStatus, cl *cloudapi.Client, clientID string, spec *v1alpha1.CloudAuthorizationSpec, now time.Time) error {
	b := make([]byte, stateBytes)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	st.AuthorizationURL = cl.AuthorizeURL(clientID, spec.CallbackURL, base64.RawURLEncoding.EncodeToString(b), spec.DeviceID)
	st.AuthorizationURLExpiresAt = timePtr(now.Add(c.TTL))
	return nil
}

// stateOf returns the state of an authorization URL, or "".
func stateOf(authorizationURL string) string {
	u, err := url.Parse(authorizationURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("state")
}

// withoutState is an authorization URL minus its state, to tell whether it still fits the spec.
func withoutState(authorizationURL string) string {
	u, err := url.Parse(authorizationURL)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Del("state")
	u.RawQuery = q.Encode()
	return u.String()
}

// wellFormedState rejects anything that cannot be a state this operator issued before any lookup.
func wellFormedState(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(stateBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// CallbackHandler serves GET /oauth2/callback: it accepts only a state it issued, once and in time,
// exchanges the code and writes the tokens into the Secret; the controller takes over from there.
// It answers the browser with a short page, never with a token.
//
// It may run on every replica: it reads its object past the cache and writes conditionally, so two
// replicas, or a replayed request, cannot both use one state.
type CallbackHandler struct {
	// Client finds objects by state in the cache and writes status.
	Client    client.Client
	APIReader client.Reader
	Secrets   *secrets.Writer
	Endpoints *Endpoints
	Consent   *Consent
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// LookupWait bounds how long a state is looked for in the cache, which may lag a URL just written.
	LookupWait time.Duration
	// waiters bounds the requests looking for a state at once, so forged states cannot pile up.
	waiters chan struct{}
}

// NewCallbackHandler returns a handler with its bounds set.
func NewCallbackHandler(h CallbackHandler) *CallbackHandler {
	if h.LookupWait <= 0 {
		h.LookupWait = 2 * time.Second
	}
	h.waiters = make(chan struct{}, 8)
	return &h
}

// callbackOutcome is what the browser is told.
type callbackOutcome struct {
	status int
	title  string
	detail string
}

var (
	outcomeBadState = callbackOutcome{http.StatusBadRequest, "This authorization link is not valid",
		"It is unknown, was already used, or has expired. Open the current authorizationURL from the CloudAuthorization's status."}
	outcomeBusy = callbackOutcome{http.StatusServiceUnavailable, "Please try again",
		"The operator could not handle this request right now; reload the page."}
)

func (h *CallbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != CallbackPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writePage(w, callbackOutcome{http.StatusMethodNotAllowed, "Method not allowed", "Use GET."})
		return
	}
	writePage(w, h.handle(r.Context(), r.URL.Query()))
}

func (h *CallbackHandler) handle(ctx context.Context, q url.Values) callbackOutcome {
	state := q.Get("state")
	if !wellFormedState(state) {
		return outcomeBadState
	}
	ca, err := h.find(ctx, state)
	if err != nil || ca == nil {
		return outcomeBadState
	}
	logger := log.FromContext(ctx).WithValues("cloudAuthorization", klog.KObj(ca))
	cl, err := h.Endpoints.Cloud(cloudEndpointOf(ca), ca.Spec.CABundle)
	if err != nil {
		return callbackOutcome{http.StatusInternalServerError, "Authorization failed", "The CloudAuthorization's endpoint cannot be used; see its status."}
	}
	cs, err := readCredentials(ctx, h.APIReader, ca.Namespace, ca.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	if err != nil {
		return callbackOutcome{http.StatusInternalServerError, "Authorization failed", "The app credentials cannot be read; see the CloudAuthorization's status."}
	}
	creds := cloudapi.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}

	if code := q.Get("error"); code != "" {
		reason, msg := v1alpha1.ReasonAuthorizationFailed, "Verizon answered the consent with an error"
		if code == "access_denied" {
			reason, msg = v1alpha1.ReasonAccessDenied, "The person refused consent (access_denied)"
		}
		if err := h.consume(ctx, ca, state, func(st *v1alpha1.CloudAuthorizationStatus, now time.Time) error {
			h.fail(ca, st, now, reason, msg)
			return h.Consent.Issue(st, cl, creds.Key, &ca.Spec, now)
		}); err != nil {
			return h.consumeFailed(err)
		}
		h.Recorder.Eventf(ca, nil, corev1.EventTypeWarning, reason, "Authorize", "%s; a new authorization URL is in status", msg)
		logger.Info("Consent refused; a new authorization URL is in status", "reason", reason)
		return callbackOutcome{http.StatusOK, "Access was not granted", "Nothing was stored. To try again, open the new authorizationURL from the CloudAuthorization's status."}
	}

	code := q.Get("code")
	if code == "" {
		return callbackOutcome{http.StatusBadRequest, "Authorization failed", "The request carries neither a code nor an error."}
	}
	// The state is spent before the code is used: a replay, or a second replica, finds it gone.
	if err := h.consume(ctx, ca, state, func(st *v1alpha1.CloudAuthorizationStatus, _ time.Time) error {
		st.AuthorizationURL, st.AuthorizationURLExpiresAt = "", nil
		return nil
	}); err != nil {
		return h.consumeFailed(err)
	}

	// The code is single-use: once it is sent, the answer must be stored even if the request is abandoned.
	ctx = context.WithoutCancel(ctx)
	tokens, err := cl.Exchange(ctx, creds, code, ca.Spec.CallbackURL)
	received := h.Clock.Now()
	if err != nil {
		reason := v1alpha1.ReasonCodeExchangeFailed
		if cloudapi.ClientRejected(err) {
			reason = v1alpha1.ReasonCredentialsRejected
		}
		h.retryAfterFailure(ctx, ca, cl, creds.Key, reason, "Exchanging the authorization code failed: "+err.Error())
		logger.Info("Code exchange failed", "error", err.Error())
		return callbackOutcome{http.StatusBadGateway, "Authorization failed", "Verizon did not accept the authorization. A new authorizationURL is in the CloudAuthorization's status."}
	}
	expiresAt := renewal.Expiry(received, tokens.ExpiresIn)
	if err := h.store(ctx, ca, tokens, received, expiresAt); err != nil {
		h.retryAfterFailure(ctx, ca, cl, creds.Key, v1alpha1.ReasonCodeExchangeFailed, "The tokens could not be stored: "+storeFailure(err))
		logger.Info("Storing the tokens failed", "error", storeFailure(err))
		return callbackOutcome{http.StatusInternalServerError, "Authorization failed", "The tokens could not be stored. A new authorizationURL is in the CloudAuthorization's status."}
	}
	h.Recorder.Eventf(ca, nil, corev1.EventTypeNormal, "Authorized", "Authorize",
		"Consent received; tokens written to Secret %s, the access token is valid until %s", ca.Spec.SecretName, expiresAt.UTC().Format(time.RFC3339))
	logger.Info("Consent received; tokens written", "secret", klog.KRef(ca.Namespace, ca.Spec.SecretName), "expiresAt", expiresAt.UTC())
	return callbackOutcome{http.StatusOK, "Authorization complete", "The operator stored the tokens. You can close this window."}
}

// find returns the CloudAuthorization whose live URL carries state. The cache may not show a URL
// written a moment ago, so a miss is retried briefly, by a bounded number of requests at once.
func (h *CallbackHandler) find(ctx context.Context, state string) (*v1alpha1.CloudAuthorization, error) {
	const step = 100 * time.Millisecond
	waiting := false
	defer func() {
		if waiting {
			<-h.waiters
		}
	}()
	for tries := int(h.LookupWait / step); ; tries-- {
		list := &v1alpha1.CloudAuthorizationList{}
		if err := h.Client.List(ctx, list, client.MatchingFields{indexAuthorizationState: state}); err != nil {
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

// errStateGone says the state was used, replaced or expired by the time it was checked.
var errStateGone = errors.New("state no longer valid")

// consume checks state against the object's current status, read past the cache, and writes change
// conditionally on what was read: of two requests with one state, only one gets through.
func (h *CallbackHandler) consume(ctx context.Context, ca *v1alpha1.CloudAuthorization, state string,
	change func(*v1alpha1.CloudAuthorizationStatus, time.Time) error) error {
	for range 3 {
		fresh := &v1alpha1.CloudAuthorization{}
		if err := h.APIReader.Get(ctx, client.ObjectKeyFromObject(ca), fresh); err != nil {
			if apierrors.IsNotFound(err) {
				return errStateGone
			}
			return err
		}
		now := h.Clock.Now()
		live := fresh.Status.AuthorizationURLExpiresAt != nil && now.Before(fresh.Status.AuthorizationURLExpiresAt.Time)
		if fresh.UID != ca.UID || !live || subtle.ConstantTimeCompare([]byte(stateOf(fresh.Status.AuthorizationURL)), []byte(state)) != 1 {
			return errStateGone
		}
		st := fresh.Status.DeepCopy()
		if err := change(st, now); err != nil {
			return err
		}
		err := patchCloudStatus(ctx, h.Client, fresh, st)
		if !apierrors.IsConflict(err) {
			if err == nil {
				*ca = *fresh
			}
			return err
		}
	}
	return errStateGone
}

func (h *CallbackHandler) consumeFailed(err error) callbackOutcome {
	if errors.Is(err, errStateGone) {
		return outcomeBadState
	}
	return outcomeBusy
}

// fail records a failed consent in st.
func (h *CallbackHandler) fail(ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus, now time.Time, reason, msg string) {
	msg += "; open the new status.authorizationURL to try again"
	setCondition(&st.Conditions, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, reason, msg, ca.Generation, now)
	setCondition(&st.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, "No refresh token: "+msg, ca.Generation, now)
}

// retryAfterFailure records a failure after the state was spent and offers a new URL. A write that
// fails leaves the status without a URL, and the controller issues one.
func (h *CallbackHandler) retryAfterFailure(ctx context.Context, ca *v1alpha1.CloudAuthorization, cl *cloudapi.Client, clientID, reason, msg string) {
	for range 3 {
		fresh := &v1alpha1.CloudAuthorization{}
		if err := h.APIReader.Get(ctx, client.ObjectKeyFromObject(ca), fresh); err != nil || fresh.UID != ca.UID {
			return
		}
		now := h.Clock.Now()
		st := fresh.Status.DeepCopy()
		h.fail(fresh, st, now, reason, msg)
		if h.Consent.Issue(st, cl, clientID, &fresh.Spec, now) != nil {
			return
		}
		if err := patchCloudStatus(ctx, h.Client, fresh, st); !apierrors.IsConflict(err) {
			if err == nil {
				h.Recorder.Eventf(fresh, nil, corev1.EventTypeWarning, reason, "Authorize", "%s", msg)
			}
			return
		}
	}
}

// store writes tokens obtained from a code into the Secret, retrying a write that raced another.
func (h *CallbackHandler) store(ctx context.Context, ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received, expiresAt time.Time) error {
	var err error
	for range 3 {
		var sec *corev1.Secret
		if sec, err = h.Secrets.Fresh(ctx, ca, ca.Spec.SecretName, adoptable); err != nil {
			return err
		}
		_, _, err = h.Secrets.Write(ctx, ca, sec, ca.Spec.SecretName, secrets.Change{
			Template: ca.Spec.SecretTemplate, Data: cloudTokenData(tokens, expiresAt), Adopt: true,
			Annotations: map[string]string{
				v1alpha1.RefreshStartedAnnotation: "",
				v1alpha1.RefreshedAtAnnotation:    received.UTC().Format(time.RFC3339Nano),
			},
		})
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return err
}

// storeFailure describes a failed Secret write without quoting an API error (safe as they are, but
// long): a conflict with another owner is named, anything else is generic.
func storeFailure(err error) string {
	if isConflict(err) {
		return err.Error()
	}
	return "the Kubernetes API refused the Secret write"
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Detail}}</p><p>thingspace-operator</p></body></html>
`))

// writePage answers the browser. The request URL carries the code, so the page must not leak it
// onwards (no referrer, no caching, no scripts).
func writePage(w http.ResponseWriter, o callbackOutcome) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(o.status)
	_ = pageTemplate.Execute(w, struct{ Title, Detail string }{o.title, o.detail})
}

// CallbackServer runs the callback handler on its own listener, on every replica (the Service in front
// of the manager may route a browser to any of them).
type CallbackServer struct {
	// Listener is used when set (tests); otherwise Addr is listened on.
	Listener net.Listener
	Addr     string
	Handler  http.Handler
}

// NeedLeaderElection is false: the callback must answer on whichever replica the browser reaches.
func (s *CallbackServer) NeedLeaderElection() bool { return false }

// Start serves until ctx ends.
func (s *CallbackServer) Start(ctx context.Context) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute, // a code exchange is bounded by the upstream timeout
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	}
}
