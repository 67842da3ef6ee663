package policy

import "time"

// A token SharedElsewhere (another manager, a shard of the same fleet, holds the same key: the
// platform's one token serves both) is never revoked by a rotation: the other manager would not know
// its token ended. renewBefore then counts as zero (renewal at expiry, when the platform hands out the
// next token to whoever asks), and a refresh request is observed without a new token.

// renewBefore is the renewal window in force: none for a token SharedElsewhere.
func (in AppInput) renewBefore() time.Duration {
	if in.SharedElsewhere {
		return 0
	}
	return in.RenewBefore
}

// revokeSkipped names the rotation a token SharedElsewhere kept from happening at step: the refresh
// request, or renewBefore once its window has begun.
func revokeSkipped(in AppInput, manual bool, step AppStep) string {
	switch {
	case !in.SharedElsewhere || step == AppFetch:
		return ""
	case manual:
		return WhyRefreshRequested
	case in.RenewBefore > 0 && step == AppWait &&
		!in.Now.Before(AppPlannedRenewal(in.Status, in.Generation, in.RenewBefore, in.Current, in.Jitter)):
		return WhyRenewBefore
	}
	return ""
}
