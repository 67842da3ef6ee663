// Package consent issues and spends the state of a CloudAuthorization's authorization URL.
//
// The state is the only proof that a browser arriving at the OAuth2 callback was sent by this
// operator for this object. It is 256 random bits, lives only in the object's status (so every
// replica sees the same one), expires after a TTL, and is single-use: Spend checks it against the
// status read past the caches and removes it with a write conditional on that read, so of two
// requests with one state (a replay, a reload, a second replica) only one gets through.
package consent

import (
	"context"
	"crypto/rand"
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
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// DefaultTTL bounds how long an authorization URL (its state) is accepted.
const DefaultTTL = 15 * time.Minute

// IndexField indexes CloudAuthorizations by the state of their live authorization URL (see
// IndexValue); the callback finds its object through it.
const IndexField = "status.authorizationURL.state"

// stateBytes of randomness make a state unguessable (256 bits).
const stateBytes = 32

// Store issues authorization URLs.
type Store struct {
	// TTL bounds how long a state is accepted; zero means DefaultTTL.
	TTL time.Duration
}

func (s *Store) ttl() time.Duration {
	if s.TTL <= 0 {
		return DefaultTTL
	}
	return s.TTL
}

// Ensure keeps a live authorization URL in st: a new one when there is none, it has expired, or the
// spec or client key it was made for changed.
func (s *Store) Ensure(st *v1alpha1.CloudAuthorizationStatus, cl *cloudapi.Client, clientID string, spec *v1alpha1.CloudAuthorizationSpec, now time.Time) error {
	if st.AuthorizationURL != "" && st.AuthorizationURLExpiresAt != nil && now.Before(st.AuthorizationURLExpiresAt.Time) &&
		withoutState(st.AuthorizationURL) == withoutState(cl.AuthorizeURL(clientID, spec.CallbackURL, "", spec.DeviceID)) {
		return nil
	}
	return s.Issue(st, cl, clientID, spec, now)
}

// Issue puts a new authorization URL with a fresh state in st.
func (s *Store) Issue(st *v1alpha1.CloudAuthorizationStatus, cl *cloudapi.Client, clientID string, spec *v1alpha1.CloudAuthorizationSpec, now time.Time) error {
	b := make([]byte, stateBytes)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	st.AuthorizationURL = cl.AuthorizeURL(clientID, spec.CallbackURL, base64.RawURLEncoding.EncodeToString(b), spec.DeviceID)
	exp := metav1.NewTime(renewal.Truncate(now.Add(s.ttl())))
	st.AuthorizationURLExpiresAt = &exp
	return nil
}

// IndexValue is the value of IndexField for ca: the state of its authorization URL, or "".
func IndexValue(ca *v1alpha1.CloudAuthorization) string { return stateOf(ca.Status.AuthorizationURL) }

// WellFormed rejects, before any lookup, anything that cannot be a state this operator issued.
func WellFormed(state string) bool {
	if len(state) != base64.RawURLEncoding.EncodedLen(stateBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(state)
	return err == nil
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

// ErrStateGone says the state was used, replaced or expired by the time it was checked.
var ErrStateGone = errors.New("state no longer valid")

// Spend checks state against ca's current status, read past the cache with r, and writes change
// conditionally on what was read: of two requests with one state, only one gets through. change
// must remove or replace the state. On success ca is the object as written. now gives the time.
func Spend(ctx context.Context, c client.Client, r client.Reader, now func() time.Time, ca *v1alpha1.CloudAuthorization, state string,
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
		live := fresh.Status.AuthorizationURLExpiresAt != nil && t.Before(fresh.Status.AuthorizationURLExpiresAt.Time)
		if fresh.UID != ca.UID || !live || subtle.ConstantTimeCompare([]byte(stateOf(fresh.Status.AuthorizationURL)), []byte(state)) != 1 {
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
