package policy

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Consumers of cluster-scoped credentials: a namespaced object naming a cluster-scoped one (for example
// ThingSpaceApp.spec.clusterAppRef) gets a copy of its credential when the cluster-scoped object allows
// its namespace, and never calls the upstream itself.

// Admission is whether one consumer may use a cluster-scoped credential.
type Admission struct {
	Allowed bool
	// Message is the NotAllowed condition's message when it may not.
	Message string
}

// Admit decides whether a consumer in namespace ns, whose labels are nsLabels (nil when the namespace
// is not known yet), may use the cluster-scoped kind/name allowing a. A selector that cannot be parsed
// admits nobody, and the message says so.
func Admit(kind, name string, a *v1alpha1.AllowedNamespaces, ns string, nsLabels map[string]string) Admission {
	ok, err := NamespaceAllowed(a, ns, nsLabels)
	if ok {
		return Admission{Allowed: true}
	}
	msg := NotAllowedMessage(kind, name, ns)
	if err != nil {
		msg += "; " + err.Error()
	}
	return Admission{Message: msg}
}

// CountConsumers is the status of a cluster-scoped object whose consumers were admitted as admissions
// say: the admitted ones are its consumers, the others refused.
func CountConsumers(admissions []Admission) v1alpha1.ConsumerStatus {
	var c v1alpha1.ConsumerStatus
	for _, a := range admissions {
		if a.Allowed {
			c.Consumers++
		} else {
			c.RefusedConsumers++
		}
	}
	return c
}

// ConsumerStep is what a consumer's reconcile does with its Secret.
type ConsumerStep int

const (
	// ConsumerPublish writes the cluster object's token into the consumer's Secret.
	ConsumerPublish ConsumerStep = iota
	// ConsumerKeep leaves the consumer's Secret as it is: the cluster object has nothing better, and the
	// last token copied serves until it expires.
	ConsumerKeep
	// ConsumerDelete removes the consumer's Secret: its namespace may not hold the credential.
	ConsumerDelete
)

// ConsumerInput is what a consumer's decision is made from.
type ConsumerInput struct {
	// Kind and Name name the cluster-scoped object referenced; Found says it exists.
	Kind, Name string
	Found      bool
	Admission  Admission
	// Source is the token in the cluster object's Secret (zero: none), SourceEnds the expiry its status
	// records (zero: none yet). A status expiry already past ends the token early: it was revoked.
	Source     AppToken
	SourceEnds time.Time
	// SourceReady says the cluster object reports Ready=True for its current generation. At the natural
	// expiry of its token that means a renewal is under way (ThingSpace issues the next token only once
	// the last one expired), so the consumer mirrors it for ConsumerRenewalGrace instead of flapping.
	SourceReady bool
	// Held is the token in the consumer's own Secret (zero: none).
	Held AppToken
	Now  time.Time
	// OtherShard, when the cluster object is not Found, says it exists in another manager's shard (the
	// Ready message; reason OtherShard).
	OtherShard string
}

// ConsumerDecision says what to do, and the consumer's Ready condition.
type ConsumerDecision struct {
	Step ConsumerStep
	// Token is what the consumer's Secret holds afterwards (zero: nothing), perhaps expired.
	Token AppToken
	Ready metav1.ConditionStatus
	// Reason and Message of the Ready condition.
	Reason, Message string
	// Next is when to look again without a watch event: the published token's expiry, so Ready turns
	// False on time. Zero: wait for a watch (the cluster object, its Secret, the namespace).
	Next time.Time
}

// ConsumerRenewalGrace is how long after the source token's natural expiry a consumer keeps mirroring a
// cluster object that still reports Ready: long enough for its renewal pass (one upstream request,
// bounded by the default upstream timeout) to land. A renewal that fails turns the source's Ready False,
// and that watch event reaches the consumer at once; the grace only bounds a source that hangs.
const ConsumerRenewalGrace = 45 * time.Second

// DecideConsumer decides a consumer's pass. A namespace not allowed loses its Secret. A cluster object
// that is gone or holds no valid token leaves the consumer's last token in place until it expires (the
// workloads keep working through the platform team's outage, as a namespaced app's do through a failing
// refresh), with Ready False reason AppNotReady. Otherwise the cluster object's token is published, and
// Ready follows its expiry.
func DecideConsumer(in ConsumerInput) ConsumerDecision {
	if !in.Admission.Allowed {
		return ConsumerDecision{Step: ConsumerDelete, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotAllowed, Message: in.Admission.Message}
	}
	usable := in.Source.ValidAt(in.Now) && (in.SourceEnds.IsZero() || in.Now.Before(in.SourceEnds))
	valid := func(step ConsumerStep, t AppToken, next time.Time) ConsumerDecision {
		return ConsumerDecision{Step: step, Token: t, Ready: metav1.ConditionTrue, Reason: v1alpha1.ReasonTokenValid,
			Message: fmt.Sprintf("The Secret holds the token of %s %q, valid until %s", in.Kind, in.Name, t.ExpiresAt.UTC().Format(time.RFC3339)),
			Next:    next}
	}
	if in.Found && usable {
		return valid(ConsumerPublish, in.Source, in.Source.ExpiresAt)
	}
	// The copy reached its natural expiry (the status did not end it early: a revoke would have) and the
	// source still reports Ready: its renewal is in flight, or its new token is in its Secret and the
	// status recording it is on its way. The decision made at publication stands, so nothing is written
	// and Ready does not flip at every rotation; the source's next update publishes the new token.
	renewing := in.Found && in.SourceReady && in.Held.AccessToken != "" &&
		!in.Now.Before(in.Held.ExpiresAt) && in.Now.Before(in.Held.ExpiresAt.Add(ConsumerRenewalGrace)) &&
		(in.SourceEnds.IsZero() || !in.SourceEnds.Before(in.Held.ExpiresAt))
	if renewing {
		return valid(ConsumerKeep, in.Held, in.Held.ExpiresAt.Add(ConsumerRenewalGrace))
	}
	msg := fmt.Sprintf("%s %q holds no valid token", in.Kind, in.Name)
	reason := v1alpha1.ReasonAppNotReady
	switch {
	case !in.Found && in.OtherShard != "":
		msg, reason = in.OtherShard, v1alpha1.ReasonOtherShard
	case !in.Found:
		msg = fmt.Sprintf("%s %q not found", in.Kind, in.Name)
	}
	if in.Held.ValidAt(in.Now) {
		msg += "; the Secret keeps the last token copied until it expires at " + in.Held.ExpiresAt.UTC().Format(time.RFC3339)
	}
	// The status keeps saying what the Secret holds, expired or not.
	return ConsumerDecision{Step: ConsumerKeep, Token: in.Held, Ready: metav1.ConditionFalse, Reason: reason, Message: msg}
}
