package cli

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Condition types other engineers' kstatus work adds; matched by name so the plugin reads them when
// present and ignores their absence.
const (
	conditionStalled     = "Stalled"
	conditionReconciling = "Reconciling"
)

// Row is one object in the status table, read from its status only.
type Row struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Ready is the Ready condition's status, empty when the operator has not written one yet.
	Ready   metav1.ConditionStatus `json:"ready,omitempty"`
	Reason  string                 `json:"reason,omitempty"`
	Message string                 `json:"message,omitempty"`
	// ExpiresAt is when the (access) token in the Secret expires; M2MSessions have none in status.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// NextRenewal is the next planned upstream call: renewalTime, or an M2MSession's nextKeepAliveTime.
	NextRenewal *time.Time `json:"nextRenewal,omitempty"`
	// LastFailure is the latest failure status shows, nil when there is none.
	LastFailure *Failure `json:"lastFailure,omitempty"`
	// observedRefresh is status.observedRefreshRequest: what `refresh` waits for.
	observedRefresh string
}

// Failure is a failure status records: a condition that says so, or failed refreshes.
type Failure struct {
	Reason  string     `json:"reason"`
	Message string     `json:"message,omitempty"`
	At      *time.Time `json:"at,omitempty"`
}

// notFailures are reasons of a False condition that mean waiting, not failing.
var notFailures = map[string]bool{v1alpha1.ReasonPending: true, v1alpha1.ReasonAuthorizationPending: true}

// RowOf reads the row of one of the operator's objects; ok is false for any other type.
func RowOf(obj client.Object) (Row, bool) {
	r := Row{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	var conds []metav1.Condition
	var rs *v1alpha1.RefreshStatus
	switch o := obj.(type) {
	case *v1alpha1.ThingSpaceApp:
		r.Kind, conds, rs = "ThingSpaceApp", o.Status.Conditions, &o.Status.RefreshStatus
	case *v1alpha1.CloudAuthorization:
		r.Kind, conds, rs = "CloudAuthorization", o.Status.Conditions, &o.Status.RefreshStatus
	case *v1alpha1.ClusterThingSpaceApp:
		r.Kind, conds, rs = "ClusterThingSpaceApp", o.Status.Conditions, &o.Status.RefreshStatus
	case *v1alpha1.M2MSession:
		r.Kind, conds = "M2MSession", o.Status.Conditions
		r.NextRenewal = timeOf(o.Status.NextKeepAliveTime)
		r.observedRefresh = o.Status.ObservedRefreshRequest
	case *v1alpha1.ClusterM2MSession:
		r.Kind, conds = "ClusterM2MSession", o.Status.Conditions
		r.NextRenewal = timeOf(o.Status.NextKeepAliveTime)
		r.observedRefresh = o.Status.ObservedRefreshRequest
	default:
		return Row{}, false
	}
	if rs != nil {
		r.ExpiresAt, r.NextRenewal = timeOf(rs.ExpiresAt), timeOf(rs.RenewalTime)
		r.observedRefresh = rs.ObservedRefreshRequest
	}
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c != nil {
		r.Ready, r.Reason, r.Message = c.Status, c.Reason, c.Message
	}
	r.LastFailure = lastFailure(conds, rs)
	return r, true
}

// lastFailure is the latest failure in status: a False condition (other than one that only waits), a
// True Stalled, or failed refreshes counted in rs (whose time also dates a False Ready they prolong).
func lastFailure(conds []metav1.Condition, rs *v1alpha1.RefreshStatus) *Failure {
	var best *Failure
	var ready *Failure
	for _, c := range conds {
		failing := c.Status == metav1.ConditionFalse && !notFailures[c.Reason]
		switch c.Type {
		case conditionReconciling:
			failing = false
		case conditionStalled:
			failing = c.Status == metav1.ConditionTrue
		}
		if !failing {
			continue
		}
		f := &Failure{Reason: c.Reason, Message: c.Message, At: timeOf(&c.LastTransitionTime)}
		if c.Type == v1alpha1.ConditionReady {
			ready = f
		}
		best = later(best, f)
	}
	if rs != nil && rs.FailedRefreshAttempts > 0 && rs.LastFailureTime != nil {
		at := timeOf(rs.LastFailureTime)
		switch {
		case ready != nil:
			// Still failing since the transition: the last failure is the newest attempt's.
			if ready.At == nil || at.After(*ready.At) {
				ready.At = at
			}
			best = later(best, ready)
		default:
			f := &Failure{Reason: "RefreshFailed", At: at,
				Message: fmt.Sprintf("%d consecutive failed refresh(es)", rs.FailedRefreshAttempts)}
			if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c != nil && c.Reason == v1alpha1.ReasonRefreshFailing {
				f.Reason, f.Message = c.Reason, c.Message
			}
			best = later(best, f)
		}
	}
	return best
}

// later is the later of two failures; a tie keeps a (the earlier condition in status).
func later(a, b *Failure) *Failure {
	switch {
	case a == nil:
		return b
	case b == nil || b.At == nil:
		return a
	case a.At == nil || b.At.After(*a.At):
		return b
	}
	return a
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// sortRows orders rows by namespace, kind (in the order of kinds) and name: the same objects always
// print in the same order.
func sortRows(rows []Row) {
	slices.SortStableFunc(rows, func(a, b Row) int {
		ka, _ := parseKind(a.Kind)
		kb, _ := parseKind(b.Kind)
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(ka.order(), kb.order()), cmp.Compare(a.Name, b.Name))
	})
}
