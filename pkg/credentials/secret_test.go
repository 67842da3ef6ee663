package credentials

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func secretObject(rv string, data map[string]string) *corev1.Secret {
	b := map[string][]byte{}
	for k, v := range data {
		b[k] = []byte(v)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "fleet-session", ResourceVersion: rv}, Data: b}
}

type watchCall struct {
	rv, fields string
	w          *watch.FakeWatcher
}

// TestSecretSourceWatch drives the source's watch through a fake clientset: rotations, a 410 Gone, a
// watch that ends, a failed one (backoff on the fake clock) and a deletion.
func TestSecretSourceWatch(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC))
	exp := fc.Now().Add(time.Hour)
	cs := fake.NewClientset(secretObject("100", sessionSecret("t1", "s1", exp)))
	calls := make(chan watchCall, 10)
	cs.PrependWatchReactor("secrets", func(a k8stesting.Action) (bool, watch.Interface, error) {
		r := a.(k8stesting.WatchAction).GetWatchRestrictions()
		w := watch.NewFake()
		calls <- watchCall{r.ResourceVersion, r.Fields.String(), w}
		return true, w, nil
	})
	next := func(wantRV string) *watch.FakeWatcher {
		t.Helper()
		select {
		case c := <-calls:
			if c.rv != wantRV || c.fields != "metadata.name=fleet-session" {
				t.Fatalf("watch from %q with %q, want from %q on metadata.name=fleet-session", c.rv, c.fields, wantRV)
			}
			return c.w
		case <-time.After(within):
			t.Fatalf("no watch from %q", wantRV)
			return nil
		}
	}
	ctx := context.Background()
	s, err := NewSecretSource(ctx, cs, "ns", "fleet-session", WithSecretClock(fc), WithBackoff(time.Second, 4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	c, err := s.Current(ctx)
	if err != nil || c.AccessToken != "t1" || c.SessionToken != "s1" {
		t.Fatalf("after the get: %v %v", c, err)
	}

	w1 := next("100")
	w1.Modify(secretObject("101", sessionSecret("t2", "s2", exp)))
	if c = waitFor(t, s, c.Version); c.AccessToken != "t2" || c.SessionToken != "s2" {
		t.Fatalf("rotation: %v", c)
	}
	// 410 Gone: restart at once from the current state.
	w1.Error(&metav1.Status{Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired})
	w2 := next("")
	w2.Add(secretObject("150", sessionSecret("t3", "s3", exp)))
	if c = waitFor(t, s, c.Version); c.AccessToken != "t3" {
		t.Fatalf("after the relist: %v", c)
	}
	// A watch that ends (its timeout) is re-opened at once from where it was.
	w2.Stop()
	w3 := next("150")
	// A failed watch is retried after a backoff.
	w3.Error(&metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonInternalError})
	for !fc.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	select {
	case c := <-calls:
		t.Fatalf("re-watched from %q without a backoff", c.rv)
	default:
	}
	fc.Step(2 * time.Second) // > the first backoff with its jitter
	w4 := next("150")
	if c, err := s.Current(ctx); err != nil || c.AccessToken != "t3" {
		t.Fatalf("a watch failure took the credential away: %v %v", c, err)
	}
	w4.Delete(secretObject("160", nil))
	if _, err := s.WaitNewer(ctxWithin(t), c.Version); err == nil {
		t.Fatal("credential after the deletion")
	}
	if _, err := s.Current(ctx); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("after the deletion: %v", err)
	}
}

func ctxWithin(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, s Source, old string) Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	c, err := s.WaitNewer(ctx, old)
	if err != nil {
		t.Fatalf("no newer credential than %q: %v", old, err)
	}
	return c
}

func TestSecretSourceStart(t *testing.T) {
	ctx := context.Background()
	// Not there yet: no error, no credential, and it shows up through the watch.
	cs := fake.NewClientset()
	s, err := NewSecretSource(ctx, cs, "ns", "fleet-session")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if _, err := s.Current(ctx); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("missing Secret: %v", err)
	}
	// The fake clientset's watch needs a moment to be registered; creating before it would be missed
	// by the fake (not by an API server, which starts the watch at the get's resource version).
	for len(cs.Actions()) < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := cs.CoreV1().Secrets("ns").Create(ctx, secretObject("", appSecret("t1", time.Now().Add(time.Hour))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := waitFor(t, s, ""); c.AccessToken != "t1" {
		t.Fatalf("created Secret: %v", c)
	}
	// Forbidden: the missing Role shows at start.
	cs = fake.NewClientset()
	cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "fleet-session", errors.New("no Role"))
	})
	if _, err := NewSecretSource(ctx, cs, "ns", "fleet-session"); err == nil {
		t.Fatal("a forbidden get was accepted")
	}
}
