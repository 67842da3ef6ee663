package scoped

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/secrets"
)

const (
	labelledSecrets = 300
	// Just under a Secret's 1 MiB limit, which counts data and metadata together.
	labelledSecretSize = 1<<20 - 4<<10
	// The bound: as much as 300 unrelated Secrets add.
	labelledBudget = 10 << 20
	// The heap's peak while the cache syncs: half the manager's default memory limit (256Mi). The
	// informer sees the Secrets one by one (a watch list), each transformed before it is stored, so the
	// whole 300 MiB is never on the heap at once.
	labelledPeakBudget = 128 << 20
)

// TestSecretCacheLabelledSecretsNotOwnedAddUnder10MiB creates 300 Secrets of 1 MiB that carry the
// managed-by label but no controller reference of the operator, then syncs the manager's Secret cache
// with the real CacheOptions and measures what it holds: under 10 MiB of Go heap after GC. The same cache
// without the data-stripping transform (what the operator had before) holds the whole 300 MiB, which
// shows the measurement can fail. Slow: writing 300 MiB to etcd takes most of its time.
func TestSecretCacheLabelledSecretsNotOwnedAddUnder10MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 300 MiB to etcd")
	}
	ns := namespace(t, "labelled-secrets")
	start := time.Now()
	createLabelled(t, ns, labelledSecrets)
	t.Logf("created %d labelled Secrets of %d KiB in %s", labelledSecrets, labelledSecretSize>>10, time.Since(start).Round(time.Millisecond))

	real := controller.CacheOptions()
	added, peak := cacheHeap(t, real)
	t.Logf("with the operator's cache options: %.1f MiB of heap for %d labelled Secrets (peak %.1f MiB while syncing)",
		mib(added), labelledSecrets, mib(peak))
	if added >= labelledBudget {
		t.Errorf("the Secret cache holds %.1f MiB for %d labelled Secrets it does not own; want under %d MiB",
			mib(added), labelledSecrets, labelledBudget>>20)
	}
	if peak >= labelledPeakBudget {
		t.Errorf("the heap grew by %.1f MiB while the cache synced; want under %d MiB", mib(peak), labelledPeakBudget>>20)
	}

	// The control: only the managedFields transform, as before the cache kept owned Secrets' data only.
	before := controller.CacheOptions()
	before.ByObject = map[client.Object]cache.ByObject{&corev1.Secret{}: {
		Label:     labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}),
		Transform: secrets.KeepOwnManagedFields,
	}}
	unstripped, unstrippedPeak := cacheHeap(t, before)
	t.Logf("without the data transform: %.1f MiB (peak %.1f MiB)", mib(unstripped), mib(unstrippedPeak))
	if unstripped < labelledSecrets*labelledSecretSize*9/10 || unstrippedPeak < labelledPeakBudget {
		t.Errorf("without the transform the cache holds only %.1f MiB (peak %.1f MiB): the measurement cannot tell",
			mib(unstripped), mib(unstrippedPeak))
	}
}

// createLabelled creates n Secrets of labelledSecretSize in ns with the managed-by label, some of them
// also with an ownerReference (not a controller one) to a kind of the operator.
func createLabelled(t *testing.T, ns string, n int) {
	t.Helper()
	blob := make([]byte, labelledSecretSize)
	_, _ = rand.Read(blob)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 6 {
		wg.Go(func() {
			for i := range next {
				s := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("labelled-%03d", i),
						Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}},
					Data: map[string][]byte{"blob": blob},
				}
				if i%2 == 1 {
					s.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(),
						Kind: "ThingSpaceApp", Name: "not-the-controller", UID: "uid-x"}}
				}
				if err := k8s.Create(context.Background(), s); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// cacheHeap starts a cache with opts, waits until its Secret informer holds every labelled Secret, and
// returns how much the Go heap grew (after GC both times) while the cache is still alive, and the
// largest growth sampled (every 5 ms) while it synced.
func cacheHeap(t *testing.T, opts cache.Options) (added, peak uint64) {
	t.Helper()
	opts.Scheme = scheme
	c, err := cache.New(cfg, opts)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.GetInformer(ctx, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}
	before := heapInUse()
	stopPeak, peakDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(peakDone)
		var m runtime.MemStats
		for {
			select {
			case <-stopPeak:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > before {
				peak = max(peak, m.HeapAlloc-before)
			}
		}
	}()
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(ctx) }()
	defer func() { cancel(); <-done }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("the cache never synced")
	}
	if n := countLabelled(ctx, t, c); n < labelledSecrets {
		t.Fatalf("the cache holds %d labelled Secrets, want %d", n, labelledSecrets)
	}
	close(stopPeak)
	<-peakDone
	after := heapInUse()
	runtime.KeepAlive(c)
	if after < before {
		return 0, peak
	}
	return after - before, peak
}

// countLabelled counts the labelled Secrets in c; the list (deep copies) is garbage once it returns.
func countLabelled(ctx context.Context, t *testing.T, c cache.Cache) int {
	list := &corev1.SecretList{}
	must(t, c.List(ctx, list, client.MatchingLabels{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}))
	return len(list.Items)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
