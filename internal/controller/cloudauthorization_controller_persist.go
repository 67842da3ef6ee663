package controller

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/refreshes"
)

// storeAnswerPersisting stores a refresh's answer (storeAnswer) and, while the write fails, tries
// again, answerStoreAttempts times in all, before giving up to the next pass. The rotated refresh token exists
// nowhere else: a pass that kept it in memory and returned ended the refresh's in-flight
// registration, and a shutdown right after (a SIGTERM, or the lost lease an API outage brings) exited
// with it (chaos seed 55 at 37e248f: answered 200 during an API restart, the write refused, SIGTERM
// 9 ms later, the grant lost). The caller holds the registration, so the drain waits for this.
//
// Each retry reads the Secret afresh: the failed write may have landed. It writes only while the
// Secret still carries this refresh's marker, or already holds this answer's refresh token; anything
// else is another writer's, and the next pass decides.
func (r *CloudAuthorizationReconciler) storeAnswerPersisting(ctx context.Context, p *cloudPass, e refreshes.Entry) (ctrl.Result, error) {
	wait := answerStoreRetry
	for attempt := 1; ; attempt++ {
		res, err := r.storeAnswer(ctx, p, e)
		if err == nil || attempt == answerStoreAttempts {
			return res, err
		}
		log.FromContext(ctx).Info("Storing the refreshed tokens failed; trying again", "error", err.Error(), "retryIn", wait)
		time.Sleep(wait) // real time: this paces an API write's retries, it decides nothing
		wait = min(2*wait, 2*time.Second)
		fresh, ferr := r.Secrets.Fresh(ctx, p.ca, v1alpha1.GrantSecretName(p.ca), adoptable)
		switch {
		case ferr != nil:
			// The API server is still away: the same write again.
		case fresh == nil:
			return res, err // deleted meanwhile: the next pass decides
		case fresh.Annotations[v1alpha1.RefreshStartedAnnotation] == e.Marker,
			string(fresh.Data[KeyRefreshToken]) == e.Tokens.RefreshToken:
			p.sec = fresh
		default:
			return res, err
		}
	}
}

// answerStoreAttempts bounds storeAnswerPersisting: with waits of 250 ms doubling to 2 s, 9 attempts
// span 11.75 s. An API restart is back within seconds, and the manager's drain waits longer than this
// (GracefulShutdownTimeout, the upstream timeout + 15 s).
const answerStoreAttempts = 9

// answerStoreRetry is storeAnswerPersisting's first wait; it doubles up to 2 s.
const answerStoreRetry = 250 * time.Millisecond
