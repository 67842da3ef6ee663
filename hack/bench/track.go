package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Per-object latency: when each object was created (its create answered) and when a watch first saw
// it in the wanted state. A watch, not a List every 250 ms: at 10,000 objects the Lists alone kept the
// API server busy, and a poll rounds every latency up to its period.

// tracker follows the objects of one kind through a watch: those in the benchmark's namespace, or with
// trackIn those matching a label selector in every namespace. Objects are keyed "namespace/name".
type tracker struct {
	ok   func(runtime.Object) (bool, string)
	opts []client.ListOption

	mu      sync.Mutex
	created map[string]time.Time
	reached map[string]time.Time // first seen ok
	state   map[string]string    // "" when ok, else the reason ("" reason: "(no condition yet)")
	lastRV  string
}

// track starts watching the objects of list's kind; ok tells whether one is in the wanted state and,
// if not, why. It returns once the watch is open.
func track(ctx context.Context, c client.WithWatch, list client.ObjectList, ok func(runtime.Object) (bool, string)) (*tracker, error) {
	return trackIn(ctx, c, list, ok, client.InNamespace(nsApps))
}

// trackIn is track over the objects opts select (a namespace, a label selector).
func trackIn(ctx context.Context, c client.WithWatch, list client.ObjectList, ok func(runtime.Object) (bool, string), opts ...client.ListOption) (*tracker, error) {
	t := &tracker{ok: ok, opts: opts, created: map[string]time.Time{}, reached: map[string]time.Time{}, state: map[string]string{}}
	w, err := t.open(ctx, c, list)
	if err != nil {
		return nil, err
	}
	go t.run(ctx, c, list, w)
	return t, nil
}

func (t *tracker) open(ctx context.Context, c client.WithWatch, list client.ObjectList) (watch.Interface, error) {
	fresh := list.DeepCopyObject().(client.ObjectList)
	t.mu.Lock()
	rv := t.lastRV
	t.mu.Unlock()
	if rv == "" {
		if err := c.List(ctx, fresh, t.opts...); err != nil {
			return nil, err
		}
		_ = meta.EachListItem(fresh, func(o runtime.Object) error { t.see(o, time.Now()); return nil })
		rv = fresh.GetResourceVersion()
	}
	opts := append(slices.Clone(t.opts), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
	return c.Watch(ctx, fresh, opts...)
}

// run follows the watch, reopening it when the API server ends it (from the last resourceVersion, or
// with a fresh List when that is too old).
func (t *tracker) run(ctx context.Context, c client.WithWatch, list client.ObjectList, w watch.Interface) {
	for {
		for ev := range w.ResultChan() {
			now := time.Now()
			switch ev.Type {
			case watch.Added, watch.Modified:
				t.see(ev.Object, now)
			case watch.Bookmark:
				if m, err := meta.Accessor(ev.Object); err == nil {
					t.mu.Lock()
					t.lastRV = m.GetResourceVersion()
					t.mu.Unlock()
				}
			case watch.Error:
				if apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) || apierrors.IsGone(apierrors.FromObject(ev.Object)) {
					t.mu.Lock()
					t.lastRV = ""
					t.mu.Unlock()
				}
			}
		}
		w.Stop()
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = t.open(ctx, c, list); err == nil {
				break
			}
			t.mu.Lock()
			t.lastRV = ""
			t.mu.Unlock()
			_ = sleep(ctx, time.Second)
		}
	}
}

func (t *tracker) see(o runtime.Object, now time.Time) {
	m, err := meta.Accessor(o)
	if err != nil {
		return
	}
	ok, why := t.ok(o)
	key := m.GetNamespace() + "/" + m.GetName()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastRV = m.GetResourceVersion()
	if ok {
		t.state[key] = ""
		if _, seen := t.reached[key]; !seen {
			t.reached[key] = now
		}
		return
	}
	if why == "" {
		why = "(no condition yet)"
	}
	t.state[key] = why
}

// createdAt records that the create of key ("namespace/name") was answered at when.
func (t *tracker) createdAt(key string, when time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.created[key] = when
}

// count is a rollout's countReady: how many objects are in the wanted state now, the others by reason.
func (t *tracker) count(context.Context) (int, map[string]int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ready, why := 0, map[string]int{}
	for _, s := range t.state {
		if s == "" {
			ready++
		} else {
			why[s]++
		}
	}
	return ready, why, nil
}

// Latency is the create→state latency of one rollout, over the objects that got there.
type Latency struct {
	What string `json:"what"`
	N    int    `json:"n"` // objects that reached the state
	// P50, P99 and Max: seconds from an object's create answered to the watch seeing it in the state.
	P50 float64 `json:"p50_seconds"`
	P99 float64 `json:"p99_seconds"`
	Max float64 `json:"max_seconds"`
	// AfterLastCreate: seconds from the last create answered to the last object in the state.
	AfterLastCreate float64 `json:"after_last_create_seconds"`
}

func (l Latency) String() string {
	return fmt.Sprintf("%s: p50 %.2f s, p99 %.2f s, max %.2f s over %d; the last %.2f s after the last create",
		l.What, l.P50, l.P99, l.Max, l.N, l.AfterLastCreate)
}

// latency summarises the objects created through the tracker.
func (t *tracker) latency(what string) Latency {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d []float64
	var lastCreate, lastReached time.Time
	for name, c := range t.created {
		if c.After(lastCreate) {
			lastCreate = c
		}
		r, ok := t.reached[name]
		if !ok {
			continue
		}
		if r.After(lastReached) {
			lastReached = r
		}
		d = append(d, math.Max(0, r.Sub(c).Seconds()))
	}
	l := Latency{What: what, N: len(d)}
	if len(d) == 0 {
		return l
	}
	slices.Sort(d)
	l.P50, l.P99, l.Max = quantile(d, 0.50), quantile(d, 0.99), d[len(d)-1]
	l.AfterLastCreate = math.Max(0, lastReached.Sub(lastCreate).Seconds())
	return l
}

// quantile of sorted values, nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
