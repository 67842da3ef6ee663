package policy

import (
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// The kstatus conventions (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux's health checks and Argo CD
// read: status.observedGeneration, and the abnormal-true conditions Stalled and Reconciling, derived
// here from the Ready condition every kind already sets. Every kind, the cluster-scoped ones included,
// records them through RecordProgress as the last step before its status write.

// terminalReasons are the Ready=False reasons only a person can clear: the operator sends nothing
// upstream (or cannot) until the spec or a referenced Secret changes, or, for consent, until a person
// acts on the new authorization URL. A helper adding a terminal reason adds it here, and only here.
//
// Deliberately absent: Pending and AuthorizationPending's Ready reason Pending (the first consent is the
// normal completion of a CloudAuthorization, not a failure), CredentialsNotFound and AppNotReady (a
// GitOps sync often creates the Secret or the app a moment later; a watch acts on it at once),
// UpstreamUnavailable, BearerRejected, PasswordNotStored and GrantNotStored (retried by the operator).
// A failed or refused consent (AccessDenied, AuthorizationFailed, CodeExchangeFailed) is terminal, as
// Argo CD's health check says (Degraded): a person must open the new authorization URL.
var terminalReasons = []string{
	v1alpha1.ReasonAccessDenied,
	v1alpha1.ReasonAuthorizationFailed, // until the operator's next pass offers a fresh URL (Pending again)
	v1alpha1.ReasonCodeExchangeFailed,
	v1alpha1.ReasonCredentialsRejected,
	v1alpha1.ReasonEndpointNotAllowed,
	v1alpha1.ReasonInvalidCredentials,
	v1alpha1.ReasonInvalidEndpoint,
	v1alpha1.ReasonLoginRejected, // refused by the platform, or held back by the lockout safety
	v1alpha1.ReasonNotAllowed,
	v1alpha1.ReasonPasswordLost,
	v1alpha1.ReasonReauthorizationRequired,
	v1alpha1.ReasonRequestInvalid,
	v1alpha1.ReasonSecretConflict,
}

// TerminalReasons returns the Ready=False reasons that set Stalled, sorted.
func TerminalReasons() []string { return slices.Clone(terminalReasons) }

// Terminal reports whether a Ready=False reason waits for a person (Stalled).
func Terminal(reason string) bool { return slices.Contains(terminalReasons, reason) }

// Progress is what the kstatus conditions say after a pass.
type Progress struct {
	// Stalled: Ready is False for a terminal reason (kstatus Failed).
	Stalled bool
	// Reconciling: the generation is still being acted on (kstatus InProgress).
	Reconciling bool
	// Reason and Message of whichever is set: Ready's.
	Reason, Message string
}

// DecideProgress derives Stalled and Reconciling for generation gen from the conditions a pass left
// (Ready among them) and the observedGeneration the status carried before the pass.
//
// A generation is settled once Ready is True or terminal for it; until then it is Reconciling, from
// the first pass over it and through any transient failure (a Flux rollout waits, an Argo CD sync shows
// Progressing). Once settled, a transient failure later (an outage, a failed refresh, a lost session)
// is not Reconciling: it is no change being rolled out, and Ready alone reports it. A Ready condition
// left from an older generation (a pass that sent nothing, waiting out a retry slot) says nothing about
// this one: still Reconciling.
func DecideProgress(gen, observedBefore int64, conds []metav1.Condition) Progress {
	ready := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	switch {
	case ready == nil:
		return Progress{Reconciling: true, Reason: v1alpha1.ReasonPending, Message: pendingMessage(gen)}
	case ready.ObservedGeneration != gen:
		return Progress{Reconciling: true, Reason: ready.Reason,
			Message: fmt.Sprintf("Acting on generation %d; Ready still describes generation %d: %s", gen, ready.ObservedGeneration, ready.Message)}
	case ready.Status == metav1.ConditionTrue:
		return Progress{}
	case ready.Status == metav1.ConditionFalse && Terminal(ready.Reason):
		return Progress{Stalled: true, Reason: ready.Reason, Message: ready.Message}
	case observedBefore != gen || meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReconciling):
		return Progress{Reconciling: true, Reason: ready.Reason, Message: ready.Message}
	}
	return Progress{}
}

func pendingMessage(gen int64) string {
	return fmt.Sprintf("The operator is acting on generation %d", gen)
}

// RecordProgress is the last step of every pass before its status write: Ready becomes Unknown when
// the pass left none (the first pass over an object, ended by an API error say), Stalled and
// Reconciling are set as DecideProgress says (and removed otherwise), and observedGeneration becomes
// gen. It is a function of its arguments only, so a pass that changes nothing else writes nothing.
func RecordProgress(conds *[]metav1.Condition, observedGeneration *int64, gen int64, now time.Time) {
	at := metav1.NewTime(renewal.Truncate(now))
	if meta.FindStatusCondition(*conds, v1alpha1.ConditionReady) == nil {
		meta.SetStatusCondition(conds, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionUnknown,
			Reason: v1alpha1.ReasonPending, Message: pendingMessage(gen), ObservedGeneration: gen, LastTransitionTime: at})
	}
	p := DecideProgress(gen, *observedGeneration, *conds)
	set := func(typ string, on bool) {
		if !on {
			meta.RemoveStatusCondition(conds, typ)
			return
		}
		meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: metav1.ConditionTrue,
			Reason: p.Reason, Message: p.Message, ObservedGeneration: gen, LastTransitionTime: at})
	}
	set(v1alpha1.ConditionStalled, p.Stalled)
	set(v1alpha1.ConditionReconciling, p.Reconciling)
	*observedGeneration = gen
}
