package policy

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// SessionConsumerFacts is what the reconcile of an M2MSession consuming a ClusterM2MSession
// (spec.clusterSessionRef) read. Such a session makes no upstream call: the cluster session's Secret is
// copied into its own, and its Ready mirrors the cluster session's.
type SessionConsumerFacts struct {
	// Name is the ClusterM2MSession's; Found says it exists.
	Name  string
	Found bool
	// Admission is whether its allowedNamespaces admit the consumer's namespace (see Admit).
	Admission Admission
	// SourceReady is the ClusterM2MSession's Ready condition (nil: none yet).
	SourceReady *metav1.Condition
	// HasData: the ClusterM2MSession's Secret holds a session to copy.
	HasData bool
	// OtherShard, when not Found, says the ClusterM2MSession exists in another manager's shard (the
	// Ready message; reason OtherShard).
	OtherShard string
}

// SessionConsumerDecision is what to do with the consumer's Secret (ConsumerPublish: copy the cluster
// session's keys in one write) and its Ready condition.
type SessionConsumerDecision struct {
	Step            ConsumerStep
	Ready           metav1.ConditionStatus
	Reason, Message string
}

// DecideSessionConsumer decides a session consumer's pass. A ClusterM2MSession that is gone leaves the
// last copy in place (as a namespaced session keeps its Secret when its app goes), not Ready. Admission
// comes next: a namespace not allowed loses its copy and learns nothing of the cluster session's state.
// Then whatever the cluster session's Secret holds is copied, so the copy follows it (a new login, the
// app token rotating) even while it is not Ready, and Ready, its reason and message mirror its own.
func DecideSessionConsumer(f SessionConsumerFacts) SessionConsumerDecision {
	const kind = "ClusterM2MSession"
	if !f.Found && f.OtherShard != "" {
		return SessionConsumerDecision{Step: ConsumerKeep, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonOtherShard, Message: f.OtherShard}
	}
	if !f.Found {
		return SessionConsumerDecision{Step: ConsumerKeep, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonPending,
			Message: fmt.Sprintf("%s %q not found", kind, f.Name)}
	}
	if !f.Admission.Allowed {
		return SessionConsumerDecision{Step: ConsumerDelete, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotAllowed, Message: f.Admission.Message}
	}
	step := ConsumerPublish
	if !f.HasData {
		step = ConsumerKeep
	}
	src := f.SourceReady
	switch {
	case src == nil || src.Status == metav1.ConditionUnknown:
		return SessionConsumerDecision{Step: step, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonPending,
			Message: fmt.Sprintf("%s %q has not reported Ready yet", kind, f.Name)}
	case src.Status == metav1.ConditionTrue && !f.HasData:
		// Ready, but its Secret is not in the cache yet: its arrival brings the copy.
		return SessionConsumerDecision{Step: step, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonPending,
			Message: fmt.Sprintf("%s %q: its Secret is not readable yet", kind, f.Name)}
	}
	return SessionConsumerDecision{Step: step, Ready: src.Status, Reason: src.Reason,
		Message: fmt.Sprintf("%s %q: %s", kind, f.Name, src.Message)}
}
