package controller

import (
	"context"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/inflight"
)

// Issue 8 scenario 18: controller-runtime stops the runnables that need no leader (the callback
// server) first and the reconcilers after them. The gate, one of the former, refuses new
// persist-critical calls (refreshes, code exchanges) from the moment shutdown begins, without waiting
// for the ones in flight (main does).
func TestIssue8Scenario18ShutdownGateRefusesNewCallsAtOnce(t *testing.T) {
	tr := &inflight.Tracker{}
	end, ok := tr.Begin()
	if !ok {
		t.Fatal("refused before shutdown")
	}
	g := shutdownGate{tr}
	if g.NeedLeaderElection() {
		t.Fatal("the gate must be stopped with the first runnables, on every replica")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Start(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if _, ok := tr.Begin(); !ok || tr.Draining() {
		t.Fatal("refusing before shutdown began")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the gate waited for the call in flight")
	}
	if _, ok := tr.Begin(); ok {
		t.Fatal("a new call started after shutdown began")
	}
	if tr.InFlight() != 2 {
		t.Fatalf("in flight %d", tr.InFlight())
	}
	end()
}
