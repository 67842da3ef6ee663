package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// fetchAgain repeats, once and at once, a token call that failed (err) while the Secret holds a dead
// token (policy.RetryAtOnce: revoked by this pass or before it, heldRevoked, or expired); any other
// outcome is returned as it is. first is the failed call's result: its Revoked stands whatever the repeat
// brings (the token it revoked is dead). stale is the token to replace (staleOf).
func (r *ThingSpaceAppReconciler) fetchAgain(ctx context.Context, s *appState, iss tokenbroker.Issuer, creds thingspace.Credentials,
	first tokenbroker.Result, err error, heldRevoked bool, stale string) (tokenbroker.Result, error) {
	if err == nil || ctx.Err() != nil || !policy.RetryAtOnce(err, s.in.Held, first.Revoked || heldRevoked, r.Clock.Now()) {
		return first, err
	}
	log.FromContext(ctx).V(1).Info("Token call failed with a dead token in the Secret; asking again at once")
	res, err := r.Broker.Fetch(ctx, s.key, s.who, iss, creds, s.app.Spec.Scope, stale)
	res.Revoked = res.Revoked || first.Revoked
	res.Called = true
	return res, err
}

// staleOf is the token a step asked to replace: the one it revoked after a rotation, the Secret's
// otherwise (as the first call of each step asks).
func staleOf(step policy.AppStep, held, cur policy.AppToken) string {
	if step == policy.AppRotate {
		return cur.AccessToken
	}
	return held.AccessToken
}
