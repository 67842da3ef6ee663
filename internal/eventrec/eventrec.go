// Package eventrec records the controllers' Kubernetes Events (events.k8s.io/v1) as client-go's events
// broadcaster does (the same Events, names, series and retries), with a bounded memory.
//
// client-go's broadcaster keeps every Event it wrote for six minutes, so that a repeat becomes a series
// (one Event whose count goes up) instead of a new Event: creating 10,000 ThingSpaceApps left 10,000
// Events, about 900 bytes each, in memory (make bench's heap profile), and an Event names its object's
// resourceVersion, so it repeats only while the object stands still (a warning on every retry of an
// unchanged object). Broadcaster keeps the Capacity Events seen last, where repeats come from; one
// pushed out and then repeated is written as a new Event instead of counted into its series.
package eventrec

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
)

// client-go's (tools/events): how long a series stays open, how often open series are rewritten, and
// how a failed write is retried.
const (
	finishTime  = 6 * time.Minute
	refreshTime = 30 * time.Minute
	maxTries    = 12
	retryDelay  = 10 * time.Second
)

// DefaultCapacity is how many Events a Broadcaster keeps for series by default.
const DefaultCapacity = 1024

// Broadcaster writes the Events of its recorders to Sink. Start it (a manager runnable) to close and
// refresh series; Events are written whether or not it has started.
type Broadcaster struct {
	Sink   events.EventSink
	Scheme *runtime.Scheme
	// Logger logs every Event at V(1), as controller-runtime's recorder does.
	Logger logr.Logger
	// Capacity bounds the Events kept for series; zero means DefaultCapacity.
	Capacity int
	// Clock defaults to the real clock.
	Clock clock.Clock

	mu      sync.Mutex
	lru     *list.List // of *kept, the most recent first
	entries map[key]*list.Element
}

type kept struct {
	key   key
	event *eventsv1.Event
}

// key is client-go's eventKey: Events equal in it are one series.
type key struct {
	eventType, action, reason              string
	reportingController, reportingInstance string
	regarding, related                     corev1.ObjectReference
}

func keyOf(e *eventsv1.Event) key {
	k := key{eventType: e.Type, action: e.Action, reason: e.Reason, reportingController: e.ReportingController,
		reportingInstance: e.ReportingInstance, regarding: e.Regarding}
	if e.Related != nil {
		k.related = *e.Related
	}
	return k
}

// NeedLeaderElection is false: the callback records Events on every replica.
func (b *Broadcaster) NeedLeaderElection() bool { return false }

// Start closes the series that ended and rewrites the open ones, as client-go does, until ctx ends.
func (b *Broadcaster) Start(ctx context.Context) error {
	go wait.UntilWithContext(ctx, b.refresh, refreshTime)
	wait.UntilWithContext(ctx, b.finish, finishTime)
	return nil
}

// NewRecorder returns the recorder of controller (the Events' reportingController).
func (b *Broadcaster) NewRecorder(controller string) events.EventRecorder {
	host, _ := os.Hostname()
	return &recorder{b: b, controller: controller, instance: controller + "-" + host}
}

func (b *Broadcaster) clock() clock.Clock {
	if b.Clock == nil {
		return clock.RealClock{}
	}
	return b.Clock
}

type recorder struct {
	b                    *Broadcaster
	controller, instance string
}

// Eventf records an Event as client-go's recorder makes it.
func (r *recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	b := r.b
	now := b.clock().Now()
	message := fmt.Sprintf(note, args...)
	ref, err := reference.GetReference(b.Scheme, regarding)
	if err != nil {
		b.Logger.Error(err, "Could not construct reference, will not report event", "eventType", eventtype, "reason", reason)
		return
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		if relatedRef, err = reference.GetReference(b.Scheme, related); err != nil {
			b.Logger.V(9).Info("Could not construct reference", "err", err)
		}
	}
	if !util.ValidateEventType(eventtype) {
		b.Logger.Error(nil, "Unsupported event type", "eventType", eventtype)
		return
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	e := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: util.GenerateEventName(ref.Name, now.UnixNano()), Namespace: ns},
		EventTime:           metav1.MicroTime{Time: now},
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relatedRef,
		Note:                message,
		Type:                eventtype,
	}
	b.Logger.V(1).Info("Event occurred", "object", ref.Namespace+"/"+ref.Name, "kind", ref.Kind, "apiVersion", ref.APIVersion,
		"type", eventtype, "reason", reason, "action", action, "note", message)
	go b.record(e)
}

// record writes e, or counts it into the series of an equal Event kept.
func (b *Broadcaster) record(e *eventsv1.Event) {
	if out := b.correlate(e); out != nil {
		b.attempt(out)
	}
}

// correlate keeps e (or counts it into its series) and returns what to write: e, the series' first
// write, or nil (a series already written; its count goes out when it is refreshed or finished).
func (b *Broadcaster) correlate(e *eventsv1.Event) *eventsv1.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lru == nil {
		b.lru, b.entries = list.New(), map[key]*list.Element{}
	}
	k := keyOf(e)
	if el, ok := b.entries[k]; ok {
		b.lru.MoveToFront(el)
		same := el.Value.(*kept).event
		now := metav1.MicroTime{Time: b.clock().Now()}
		if same.Series != nil {
			same.Series.Count++
			same.Series.LastObservedTime = now
			return nil
		}
		same.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: now}
		return same.DeepCopy()
	}
	b.entries[k] = b.lru.PushFront(&kept{key: k, event: e})
	capacity := b.Capacity
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	for b.lru.Len() > capacity {
		oldest := b.lru.Remove(b.lru.Back()).(*kept)
		delete(b.entries, oldest.key)
		if oldest.event.Series != nil { // its last count, as finish would write it
			go writeEvent(context.Background(), b.Sink, b.Logger, oldest.event)
		}
	}
	return e.DeepCopy()
}

// finish writes the final count of the series seen last more than finishTime ago and forgets them and
// the single Events that old, as client-go's finishSeries.
func (b *Broadcaster) finish(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lru == nil {
		return
	}
	cutoff := b.clock().Now().Add(-finishTime)
	for el := b.lru.Front(); el != nil; {
		next := el.Next()
		k := el.Value.(*kept)
		if s := k.event.Series; s != nil {
			if s.LastObservedTime.Time.Before(cutoff) {
				if _, retry := writeEvent(ctx, b.Sink, b.Logger, k.event); !retry {
					b.lru.Remove(el)
					delete(b.entries, k.key)
				}
			}
		} else if k.event.EventTime.Time.Before(cutoff) {
			b.lru.Remove(el)
			delete(b.entries, k.key)
		}
		el = next
	}
}

// refresh rewrites the open series, as client-go's refreshExistingEventSeries.
func (b *Broadcaster) refresh(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lru == nil {
		return
	}
	for el := b.lru.Front(); el != nil; el = el.Next() {
		k := el.Value.(*kept)
		if k.event.Series == nil {
			continue
		}
		if written, retry := writeEvent(ctx, b.Sink, b.Logger, k.event); !retry && written != nil {
			k.event = written
		}
	}
}

// attempt writes e, retrying as client-go does when the API server cannot be reached.
func (b *Broadcaster) attempt(e *eventsv1.Event) {
	for tries := 1; ; tries++ {
		if _, retry := writeEvent(context.Background(), b.Sink, b.Logger, e); !retry {
			return
		}
		if tries >= maxTries {
			b.Logger.Error(nil, "Unable to write event (retry limit exceeded!)", "reason", e.Reason, "object", e.Regarding.Name)
			return
		}
		time.Sleep(wait.Jitter(retryDelay, 0.25))
	}
}
