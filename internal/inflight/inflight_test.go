package inflight

import (
	"context"
	"testing"
	"time"
)

func TestDrainWaitsForRegisteredCalls(t *testing.T) {
	var tr Tracker
	end, ok := tr.Begin()
	if !ok {
		t.Fatal("Begin refused before draining")
	}
	drained := make(chan bool)
	go func() { drained <- tr.Drain(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case <-drained:
		t.Fatal("Drain returned while a call was in flight")
	default:
	}
	if _, ok := tr.Begin(); ok {
		t.Fatal("Begin accepted a call while draining")
	}
	end()
	end() // a second end is harmless
	if !<-drained {
		t.Fatal("Drain reported calls left")
	}
	if tr.InFlight() != 0 || !tr.Draining() {
		t.Fatalf("in flight %d, draining %v", tr.InFlight(), tr.Draining())
	}
}

func TestDrainGivesUpWithItsContext(t *testing.T) {
	var tr Tracker
	_, _ = tr.Begin()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if tr.Drain(ctx) {
		t.Fatal("Drain reported success with a call still in flight")
	}
}

func TestDrainWithNothingInFlight(t *testing.T) {
	var tr Tracker
	if !tr.Drain(context.Background()) {
		t.Fatal("Drain of an idle tracker failed")
	}
}
