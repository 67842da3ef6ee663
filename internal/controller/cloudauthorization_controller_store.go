package controller

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

// The Cloud Secret's layout and the reads both the reconciler and the OAuth2 callback
// (internal/callback, through cloudBackend) rely on.

// invalidEndpoint wraps why a spec's endpoint or CA bundle cannot be used: a spec change is needed.
type invalidEndpoint struct{ error }

func (e invalidEndpoint) Unwrap() error { return e.error }

// cloudUpstream returns the Cloud client and app credentials of ca, and the credentials Secret's
// resourceVersion. Errors: invalidEndpoint, *credentialsError, or a Kubernetes API error.
func cloudUpstream(ctx context.Context, d *Deps, ca *v1alpha1.CloudAuthorization) (*cloudapi.Client, cloudapi.Credentials, string, error) {
	cl, err := d.Endpoints.Cloud(cloudEndpointOf(ca), ca.Spec.CABundle)
	if err != nil {
		return nil, cloudapi.Credentials{}, "", invalidEndpoint{err}
	}
	if err := d.Endpoints.CheckCallback(ca.Spec.CallbackURL); err != nil {
		return nil, cloudapi.Credentials{}, "", invalidEndpoint{err}
	}
	cs, err := readCredentials(ctx, d.credentialsReader(), ca.Namespace, ca.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	if err != nil {
		return nil, cloudapi.Credentials{}, "", err
	}
	return cl, cloudapi.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}, cs.resourceVersion, nil
}

func (r *CloudAuthorizationReconciler) upstream(ctx context.Context, ca *v1alpha1.CloudAuthorization) (*cloudapi.Client, cloudapi.Credentials, string, error) {
	return cloudUpstream(ctx, &r.Deps, ca)
}

// cloudBackend is the callback's view of the CloudAuthorization side (callback.Backend).
type cloudBackend struct{ r *CloudAuthorizationReconciler }

func (b cloudBackend) Upstream(ctx context.Context, ca *v1alpha1.CloudAuthorization) (*cloudapi.Client, cloudapi.Credentials, error) {
	cl, creds, _, err := cloudUpstream(ctx, &b.r.Deps, ca)
	return cl, creds, err
}

// StoreGrant writes tokens obtained from a code into the Secret, retrying a write that raced another.
// A refresh token alone (the answer's access token was unusable) is stored too: it is the grant, and
// the reconciler fetches an access token with it at once.
func (b cloudBackend) StoreGrant(ctx context.Context, ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received time.Time) (time.Time, error) {
	expiresAt := grantExpiry(tokens, received)
	// The code is spent: these tokens exist nowhere else. A write that raced another, or an API error,
	// is tried again a few times (the exchange is registered with the in-flight tracker, so shutdown
	// waits); a Secret that belongs to someone else is not. Past that, KeepGrant.
	var err error
	for attempt := range storeGrantAttempts {
		if attempt > 0 && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		var sec *corev1.Secret
		if sec, err = b.r.Secrets.Fresh(ctx, ca, v1alpha1.GrantSecretName(ca), adoptable); err == nil {
			_, err = writeGrant(ctx, &b.r.Deps, ca, sec, tokens, received, expiresAt)
		}
		if err == nil || isConflict(err) || ctx.Err() != nil {
			break
		}
	}
	return expiresAt, err
}

// KeepGrant hands the tokens StoreGrant could not write to the reconciler's memory of unstored
// answers and asks for a pass, which stores them before anything else (see storeGrant).
func (b cloudBackend) KeepGrant(ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received time.Time) {
	b.r.Refreshes.Exchanged(ca.UID, tokens, received, grantExpiry(tokens, received))
	b.r.wake(ca)
}

// grantExpiry is the expiry of a code exchange's access token, zero when it has none usable.
func grantExpiry(tokens cloudapi.Tokens, received time.Time) time.Time {
	if tokens.AccessToken == "" {
		return time.Time{}
	}
	return renewal.Expiry(received, tokens.ExpiresIn)
}

// writeGrant writes a code exchange's tokens over sec, the grant Secret (nil: absent), in one
// conditional write, clearing any refresh marker: a consent supersedes every refresh of the grant
// before it. The reconciler publishes the access token to the workload's Secret afterwards.
func writeGrant(ctx context.Context, d *Deps, ca *v1alpha1.CloudAuthorization, sec *corev1.Secret, tokens cloudapi.Tokens, received, expiresAt time.Time) (*corev1.Secret, error) {
	data := map[string][]byte{KeyRefreshToken: []byte(tokens.RefreshToken)}
	if tokens.AccessToken != "" {
		data = cloudTokenData(tokens, expiresAt)
	}
	written, _, err := d.Secrets.Write(ctx, ca, sec, v1alpha1.GrantSecretName(ca), secrets.Change{
		Data: data, Adopt: true,
		Annotations: map[string]string{
			v1alpha1.RefreshStartedAnnotation: "",
			v1alpha1.RefreshedAtAnnotation:    received.UTC().Format(time.RFC3339Nano),
		},
	})
	return written, err
}

// storeGrantAttempts bounds the tries to store the tokens of a code exchange.
const storeGrantAttempts = 5

// DescribeStoreFailure describes a failed Secret write (describeStoreFailure).
func (b cloudBackend) DescribeStoreFailure(err error) string { return describeStoreFailure(err) }

// describeStoreFailure describes a failed Secret write without quoting an API error (safe as they
// are, but long): a conflict with another owner is named, anything else is generic.
func describeStoreFailure(err error) string {
	if isConflict(err) {
		return err.Error() + adoptHint
	}
	return "the Kubernetes API refused the Secret write"
}

// adoptable says whether a Secret nobody controls may be taken over: only when its owner asked with
// v1alpha1.AdoptAnnotation (bootstrap from an app already authorized elsewhere). A Secret that merely
// happens to hold a refresh_token is someone else's and never changed (issue 8 scenario 17).
func adoptable(s *corev1.Secret) bool { return s.Annotations[v1alpha1.AdoptAnnotation] == "true" }

// adoptHint completes a SecretConflict message with the way out.
const adoptHint = "; to hand a Secret the operator did not create over to it, annotate it " + v1alpha1.AdoptAnnotation + "=true"

// cloudHeld is the access token a Cloud Secret holds.
type cloudHeld struct {
	access    bool
	expiresAt time.Time
	// issued is when the tokens were obtained (the refreshed-at annotation); zero when unknown.
	issued time.Time
}

func (h cloudHeld) valid(now time.Time) bool {
	return h.access && !h.expiresAt.IsZero() && now.Before(h.expiresAt)
}

// cloudHeldToken reads the Secret's access token and expiry. An expiry is trusted no further than
// the longest lifetime the operator accepts from Verizon after the tokens were obtained: a
// hand-edited expires_at cannot keep a dead token "valid".
func cloudHeldToken(s *corev1.Secret) cloudHeld {
	if s == nil {
		return cloudHeld{}
	}
	var h cloudHeld
	if t, err := time.Parse(time.RFC3339Nano, s.Annotations[v1alpha1.RefreshedAtAnnotation]); err == nil {
		h.issued = t
	}
	exp, err := time.Parse(time.RFC3339Nano, string(s.Data[KeyExpiresAt]))
	if err != nil || len(s.Data[KeyAccessToken]) == 0 {
		return h
	}
	if !h.issued.IsZero() && exp.After(h.issued.Add(oauth.MaxExpiresIn)) {
		exp = h.issued.Add(oauth.MaxExpiresIn)
	}
	h.access, h.expiresAt = true, exp
	return h
}

// refreshMarker returns the refresh marker recorded in s, nil when none.
func refreshMarker(s *corev1.Secret) *policy.CloudMarker {
	if s == nil {
		return nil
	}
	v, ok := s.Annotations[v1alpha1.RefreshStartedAnnotation]
	if !ok {
		return nil
	}
	m := &policy.CloudMarker{Value: v}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		m.Started = t // unreadable: zero, treated as long gone
	}
	return m
}

func cloudTokenData(t cloudapi.Tokens, expiresAt time.Time) map[string][]byte {
	typ := t.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return map[string][]byte{
		KeyAccessToken:  []byte(t.AccessToken),
		KeyRefreshToken: []byte(t.RefreshToken),
		KeyTokenType:    []byte(typ),
		KeyExpiresAt:    []byte(formatExpiry(expiresAt)),
	}
}

func cloudEndpointOf(ca *v1alpha1.CloudAuthorization) string {
	if ca.Spec.Endpoint == "" {
		return v1alpha1.DefaultCloudEndpoint
	}
	return ca.Spec.Endpoint
}

func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

// isInvalidEndpoint reports an invalidEndpoint in err's chain.
func isInvalidEndpoint(err error) bool {
	var e invalidEndpoint
	return errors.As(err, &e)
}
