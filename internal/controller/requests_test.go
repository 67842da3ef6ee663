package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestHandledRequestsActOnceDespiteStaleStatus(t *testing.T) {
	h := newHandledRequests()
	who := types.NamespacedName{Namespace: "ns", Name: "a"}
	if h.pending(who, "", "") {
		t.Fatal("no annotation is no request")
	}
	if !h.pending(who, "v1", "") {
		t.Fatal("a new value is a request")
	}
	h.done(who, "v1")
	// The next reconcile reads a cached object whose status does not show v1 yet.
	if h.pending(who, "v1", "") {
		t.Fatal("v1 acted on twice through a stale status")
	}
	if h.pending(who, "v1", "v1") {
		t.Fatal("status says v1 is done")
	}
	if !h.pending(who, "v2", "v1") {
		t.Fatal("a newer value is a new request")
	}
	h.forget(who)
	if !h.pending(who, "v1", "") {
		t.Fatal("after forget, only status counts (a restart)")
	}
}
