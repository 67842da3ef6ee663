// Package consent issues and spends the consents of CloudAuthorizations: the link a person opens, the
// OAuth2 state sent to Verizon, and the cookie that ties the callback to the browser that started.
//
// Three values, each derived one way from the one before, so that whoever sees a later one cannot
// produce an earlier one:
//
//   - the start token T: 256 random bits, only in the link `…/oauth2/start?state=T` kept in the consent
//     Secret (`<name>-consent`), which only people allowed to consent can read. The start endpoint puts T
//     in a cookie of the browser that opened the link and redirects it to Verizon;
//   - the state S = H(T), sent to Verizon and back on the callback (it travels through the browser and
//     Verizon, and may be seen there: it is worth nothing without the cookie);
//   - the state hash D = H(S), in the object's status, by which the callback finds its object.
//
// The callback accepts S only with a cookie holding a T with H(T) = S (compared in constant time), so a
// link or callback URL replayed from another browser is refused before anything is spent. D lives only
// in status (every replica, and a callback-only process, sees the same one), expires after a TTL, and
// is single-use: Spend checks it against the status read past the caches and removes it with a write
// conditional on that read, so of two requests with one state (a replay, a reload, a second replica)
// only one gets through.
package consent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// DefaultTTL bounds how long a consent link (its state) is accepted.
const DefaultTTL = 15 * time.Minute

// IndexField indexes CloudAuthorizations by the hash of their live state (status.consentStateHash);
// the start endpoint and the callback find their object through it.
const IndexField = "status.consentStateHash"

// Paths of the operator's endpoints: the link starts at StartPath, Verizon returns to CallbackPath.
const (
	StartPath    = "/oauth2/start"
	CallbackPath = "/oauth2/callback"
)

// tokenBytes of randomness make a start token unguessable (256 bits).
const tokenBytes = 32

// Store issues consents.
type Store struct {
	// TTL bounds how long a consent is accepted; zero means DefaultTTL.
	TTL time.Duration
}

func (s *Store) ttl() time.Duration {
	if s.TTL <= 0 {
		return DefaultTTL
	}
	return s.TTL
}

// Ensure keeps a live consent for ca in st, given link, the consent Secret's current authorization_url
// ("" when none). It returns the link the consent Secret must hold and whether that is a new one (to be
// written before st is). A link is kept while it is live, is the one st's hash is of, and starts at
// the operator for the current callbackURL.
func (s *Store) Ensure(st *v1alpha1.CloudAuthorizationStatus, ca *v1alpha1.CloudAuthorization, link string, now time.Time) (string, bool, error) {
	st.ConsentSecretName = v1alpha1.ConsentSecretName(ca)
	if st.ConsentStateHash != "" && st.ConsentExpiresAt != nil && now.Before(st.ConsentExpiresAt.Time) {
		if tok := TokenOf(link); tok != "" && Hash(State(tok)) == st.ConsentStateHash {
			if want, err := StartURL(ca.Spec.CallbackURL, tok); err == nil && want == link {
				return link, false, nil
			}
		}
	}
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	link, err := StartURL(ca.Spec.CallbackURL, tok)
	if err != nil {
		return "", false, err
	}
	st.ConsentStateHash = Hash(State(tok))
	exp := metav1.NewTime(renewal.Truncate(now.Add(s.ttl())))
	st.ConsentExpiresAt = &exp
	return link, true, nil
}

// ExchangingMessage is the Authorized condition's message (reason AuthorizationPending) from the moment
// the callback spends a state for a code exchange until the grant is stored.
const ExchangingMessage = "Consent received; the operator is exchanging the authorization code"

// Clear removes the consent from st (the grant is in hand, or the state was spent).
func Clear(st *v1alpha1.CloudAuthorizationStatus) {
	st.ConsentStateHash, st.ConsentExpiresAt = "", nil
}

// Pending reports whether st offers a live consent at now.
func Pending(st *v1alpha1.CloudAuthorizationStatus, now time.Time) bool {
	return st.ConsentStateHash != "" && st.ConsentExpiresAt != nil && now.Before(st.ConsentExpiresAt.Time)
}

// StartURL is the link for token: the start endpoint beside callbackURL (its last path segment replaced
// by "start", no query), on the same public base, so whatever exposes the callback exposes it too.
func StartURL(callbackURL, token string) (string, error) {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "", err
	}
	start := u.ResolveReference(&url.URL{Path: "start"})
	start.RawQuery = url.Values{"state": {token}}.Encode()
	start.Fragment = ""
	return start.String(), nil
}

// TokenOf returns the start token of a link, "" when it has none well-formed.
func TokenOf(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	if tok := u.Query().Get("state"); WellFormed(tok) {
		return tok
	}
	return ""
}

// State is the OAuth2 state for token T: H(T), sent to Verizon.
func State(token string) string { return digest("thingspace-operator consent state\x00", token) }

// Hash is the status's digest of state S: H(S).
func Hash(state string) string { return digest("thingspace-operator consent state hash\x00", state) }

func digest(domain, v string) string {
	sum := sha256.Sum256([]byte(domain + v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// WellFormed rejects, before any lookup, anything that cannot be a token, state or hash of this
// package (all are 256 bits in base64url).
func WellFormed(v string) bool {
	if len(v) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// ErrStateGone says the state was used, replaced or expired by the time it was checked.
var ErrStateGone = errors.New("state no longer valid")

// Spend checks the state hash against ca's current status, read past the cache with r, and writes
// change conditionally on what was read: of two requests with one state, only one gets through. change
// must remove or replace the state. On success ca is the object as written. now gives the time.
func Spend(ctx context.Context, c client.Client, r client.Reader, now func() time.Time, ca *v1alpha1.CloudAuthorization, stateHash string,
	change func(*v1alpha1.CloudAuthorizationStatus, time.Time) error) error {
	for range 3 {
		fresh := &v1alpha1.CloudAuthorization{}
		if err := r.Get(ctx, client.ObjectKeyFromObject(ca), fresh); err != nil {
			if apierrors.IsNotFound(err) {
				return ErrStateGone
			}
			return err
		}
		t := now()
		if fresh.UID != ca.UID || !Pending(&fresh.Status, t) ||
			subtle.ConstantTimeCompare([]byte(fresh.Status.ConsentStateHash), []byte(stateHash)) != 1 {
			return ErrStateGone
		}
		st := fresh.Status.DeepCopy()
		if err := change(st, t); err != nil {
			return err
		}
		err := PatchStatus(ctx, c, fresh, st)
		if !apierrors.IsConflict(err) {
			if err == nil {
				*ca = *fresh
			}
			return err
		}
	}
	return ErrStateGone
}

// PatchStatus writes st when it differs from ca's status, conditional on ca's resourceVersion: the
// reconciler and the callback (on any replica) both write status and must not overwrite each other
// blindly. On success ca carries st and the new resourceVersion.
func PatchStatus(ctx context.Context, c client.Client, ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus) error {
	if equality.Semantic.DeepEqual(&ca.Status, st) {
		return nil
	}
	updated := ca.DeepCopy()
	updated.Status = *st
	if err := c.Status().Patch(ctx, updated, client.MergeFromWithOptions(ca, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	ca.Status, ca.ResourceVersion = updated.Status, updated.ResourceVersion
	return nil
}
