package policy

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppReplacingGrace is how long after the app's token expired a session waits for the app's
// controller, Ready, to replace it before it reports AppNotReady.
const AppReplacingGrace = 30 * time.Second

// AppReplacing decides for a session whose app's Secret holds a token that expired at expired: while
// the app is Ready (its controller has reported no failure) and the expiry is recent, its controller is
// replacing the token at this moment, and the session waits for it without a status write. Reporting
// AppNotReady there cost two status writes per race (False, then True again) and, under slow API
// writes, put the status write in front of the pass the app's new token brings (the chaos suite: a
// session's Secret 1 s later than its app's after a failover). The answer is when to look again should
// no announcement or watch come first; false: report AppNotReady.
func AppReplacing(appReady *metav1.Condition, expired, now time.Time) (time.Time, bool) {
	if appReady == nil || appReady.Status != metav1.ConditionTrue || expired.IsZero() || now.Before(expired) {
		return time.Time{}, false
	}
	if now.Sub(expired) >= AppReplacingGrace {
		return time.Time{}, false
	}
	next, end := now.Add(time.Second), expired.Add(AppReplacingGrace)
	if end.Before(next) {
		next = end
	}
	return next, true
}
