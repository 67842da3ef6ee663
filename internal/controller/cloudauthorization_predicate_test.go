package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
)

// A consent that ended at the callback without a grant brings a pass (a new link at once); one spent
// for an exchange under way, or still live, does not.
func TestConsentFailedPredicate(t *testing.T) {
	ca := func(hash, msg string) *v1alpha1.CloudAuthorization {
		c := &v1alpha1.CloudAuthorization{}
		c.Status.ConsentStateHash = hash
		if msg != "" {
			c.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionAuthorized, Status: metav1.ConditionFalse, Reason: "R", Message: msg}}
		}
		return c
	}
	for _, c := range []struct {
		name     string
		old, new *v1alpha1.CloudAuthorization
		want     bool
	}{
		{"a denial spends the state", ca("h", "waiting"), ca("", "denied"), true},
		{"a second denial, same message", ca("h", "denied"), ca("", "denied"), true},
		{"spent for an exchange", ca("h", "waiting"), ca("", consent.ExchangingMessage), false},
		{"the exchange failed", ca("", consent.ExchangingMessage), ca("", "exchange failed"), true},
		{"a new consent offered", ca("", "denied"), ca("h2", "denied"), false},
		{"nothing about consent", ca("", "granted"), ca("", "granted"), false},
		{"still live", ca("h", "waiting"), ca("h", "waiting"), false},
	} {
		if got := consentFailed().Update(event.UpdateEvent{ObjectOld: c.old, ObjectNew: c.new}); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
