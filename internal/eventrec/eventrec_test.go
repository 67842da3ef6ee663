package eventrec

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// sink records the writes.
type sink struct {
	mu      sync.Mutex
	created []*eventsv1.Event
	patched []*eventsv1.Event
}

func (s *sink) Create(_ context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created = append(s.created, e.DeepCopy())
	return e, nil
}

func (s *sink) Update(_ context.Context, e *eventsv1.Event) (*eventsv1.Event, error) { return e, nil }

func (s *sink) Patch(_ context.Context, e *eventsv1.Event, _ []byte) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.patched = append(s.patched, e.DeepCopy())
	return e, nil
}

func (s *sink) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.created), len(s.patched)
}

func fixture(t *testing.T, capacity int) (*Broadcaster, *sink, *clocktesting.FakeClock) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	return &Broadcaster{Sink: s, Scheme: scheme, Logger: logr.Discard(), Capacity: capacity, Clock: clk}, s, clk
}

func app(name, rv string) *v1alpha1.ThingSpaceApp {
	return &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("u-" + name), ResourceVersion: rv}}
}

// Eventf makes the Event client-go's recorder makes: the regarding object's reference, the
// reporting controller and instance, type, reason, action and note.
func TestEventIsClientGosEvent(t *testing.T) {
	b, _, clk := fixture(t, 0)
	r := b.NewRecorder("thingspace-operator").(*recorder)
	r.Eventf(app("a", "7"), nil, corev1.EventTypeNormal, v1alpha1.EventRefreshed, "WriteSecret", "Wrote %s", "x")
	e := waitCreated(t, b, 1)[0]
	if e.Namespace != "ns" || e.Regarding.Name != "a" || e.Regarding.Kind != "ThingSpaceApp" || e.Regarding.ResourceVersion != "7" ||
		e.Regarding.APIVersion != v1alpha1.GroupVersion.String() || e.Type != corev1.EventTypeNormal || e.Reason != v1alpha1.EventRefreshed ||
		e.Action != "WriteSecret" || e.Note != "Wrote x" || e.ReportingController != "thingspace-operator" ||
		e.ReportingInstance != r.instance || !e.EventTime.Time.Equal(clk.Now()) || e.Series != nil {
		t.Fatalf("event %+v", e)
	}
	if want := fmt.Sprintf("a.%x", clk.Now().UnixNano()); e.Name != want {
		t.Fatalf("name %q, want %q", e.Name, want)
	}
	r.Eventf(app("a", "7"), nil, "Bogus", "R", "A", "n")
	if c, p := b.Sink.(*sink).counts(); c != 1 || p != 0 {
		t.Fatalf("an invalid type was written: %d created, %d patched", c, p)
	}
}

func waitCreated(t *testing.T, b *Broadcaster, n int) []*eventsv1.Event {
	t.Helper()
	s := b.Sink.(*sink)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		if len(s.created) >= n {
			out := append([]*eventsv1.Event(nil), s.created...)
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d events created", n)
	return nil
}

// A repeat of a kept Event is a series, as with client-go: the second is patched with count 2, the
// third only counted; finishing writes the last count and forgets it.
func TestRepeatsBecomeASeries(t *testing.T) {
	b, s, clk := fixture(t, 0)
	ev := func() *eventsv1.Event {
		return &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a.1"}, Type: corev1.EventTypeWarning, Reason: "Failed",
			Regarding: corev1.ObjectReference{Namespace: "ns", Name: "a", ResourceVersion: "7"}, EventTime: metav1.MicroTime{Time: clk.Now()}}
	}
	for range 3 {
		b.record(ev())
	}
	if c, p := s.counts(); c != 1 || p != 1 || s.patched[0].Series.Count != 2 {
		t.Fatalf("%d created, %d patched; want 1 and 1 (count 2)", c, p)
	}
	if got := b.lru.Front().Value.(*kept).event.Series.Count; got != 3 {
		t.Fatalf("series count %d, want 3", got)
	}
	clk.Step(finishTime + time.Second)
	b.finish(context.Background())
	if c, p := s.counts(); c != 1 || p != 2 || s.patched[1].Series.Count != 3 || b.lru.Len() != 0 {
		t.Fatalf("after finishing: %d created, %d patched, %d kept", c, p, b.lru.Len())
	}
}

// At most Capacity Events are kept however many are written; every one is written. A series pushed
// out writes its last count.
func TestMemoryIsBoundedEveryEventWritten(t *testing.T) {
	b, s, clk := fixture(t, 8)
	series := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s.1"}, Type: corev1.EventTypeWarning, Reason: "Failed",
		Regarding: corev1.ObjectReference{Namespace: "ns", Name: "s"}, EventTime: metav1.MicroTime{Time: clk.Now()}}
	b.record(series.DeepCopy())
	b.record(series.DeepCopy())
	b.record(series.DeepCopy()) // counted: 3
	for i := range 1000 {
		b.record(&eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("o%d.1", i)}, Type: corev1.EventTypeNormal,
			Reason: "Refreshed", Regarding: corev1.ObjectReference{Namespace: "ns", Name: fmt.Sprintf("o%d", i)}})
		if b.lru.Len() > 8 || len(b.entries) > 8 {
			t.Fatalf("%d kept, capacity 8", b.lru.Len())
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, p := s.counts()
		if c == 1001 && p == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d created, %d patched; want 1001 and 2 (the series' first write and its last count)", c, p)
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.patched[1].Series.Count != 3 {
		t.Fatalf("last count %d, want 3", s.patched[1].Series.Count)
	}
}
