package credentials

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

const (
	// DefaultMinBackoff and DefaultMaxBackoff bound the delay before a failed watch is re-established.
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// watchTimeout asks the API server to end each watch after this long, so a silently dead
	// connection is replaced.
	watchTimeout = 5 * time.Minute
)

// SecretSource reads one Secret through the API server: a get, then a watch on that Secret alone
// (field selector metadata.name=<name>), re-established with backoff when it fails and restarted from
// the current state when its resource version is too old (410 Gone). It sees a rotation as soon as the
// operator writes it, where a mounted file waits for the kubelet's next sync.
//
// It needs get and watch on that one Secret; a Role restricted by resourceNames suffices (the API
// server authorises a watch whose field selector names one object as a request for that name), and
// list is not needed:
//
//	rules:
//	- apiGroups: [""]
//	  resources: ["secrets"]
//	  resourceNames: ["<name>"]
//	  verbs: ["get", "watch"]
//
// A deleted Secret leaves no credential (ErrNoCredential); a Secret whose keys do not make a credential
// leaves the last good one until its expiry.
type SecretSource struct {
	c               kubernetes.Interface
	namespace, name string
	h               *holder
	clock           clock.WithTicker
	minBackoff      time.Duration
	maxBackoff      time.Duration

	cancel context.CancelFunc
	done   chan struct{}
}

// SecretOption configures a SecretSource.
type SecretOption func(*SecretSource)

// WithSecretClock injects the clock that drives backoff and expiry checks (tests use a fake one).
func WithSecretClock(c clock.WithTicker) SecretOption { return func(s *SecretSource) { s.clock = c } }

// WithBackoff bounds the delay before re-establishing a failed watch (DefaultMinBackoff,
// DefaultMaxBackoff); it doubles at each consecutive failure. Values <= 0 keep the defaults.
func WithBackoff(initial, maxDelay time.Duration) SecretOption {
	return func(s *SecretSource) {
		if initial > 0 {
			s.minBackoff = initial
		}
		if maxDelay > 0 {
			s.maxBackoff = maxDelay
		}
	}
}

// NewSecretSource gets the Secret namespace/name once and then watches it until ctx ends or Close is
// called. A Secret that does not exist yet is not an error (Current answers ErrNoCredential until it
// appears); any other failure of the first get is returned (a missing Role shows at start).
func NewSecretSource(ctx context.Context, c kubernetes.Interface, namespace, name string, opts ...SecretOption) (*SecretSource, error) {
	s := &SecretSource{c: c, namespace: namespace, name: name, clock: clock.RealClock{},
		minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.maxBackoff < s.minBackoff {
		s.maxBackoff = s.minBackoff
	}
	s.h = newHolder(s.clock)
	sec, err := c.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	rv := ""
	switch {
	case apierrors.IsNotFound(err):
		s.h.fail(s.notFound())
	case err != nil:
		return nil, fmt.Errorf("credentials: getting Secret %s/%s: %w", namespace, name, err)
	default:
		s.apply(sec)
		rv = sec.ResourceVersion
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.run(ctx, rv)
	return s, nil
}

func (s *SecretSource) notFound() error {
	return fmt.Errorf("%w: Secret %s/%s not found", ErrNoCredential, s.namespace, s.name)
}

// Current returns the credential last seen; see Source.
func (s *SecretSource) Current(context.Context) (Credential, error) { return s.h.current() }

// WaitNewer waits for a credential whose Version differs from version; see Source.
func (s *SecretSource) WaitNewer(ctx context.Context, version string) (Credential, error) {
	return s.h.waitNewer(ctx, version)
}

// Close stops the watch.
func (s *SecretSource) Close() error {
	s.cancel()
	<-s.done
	s.h.close()
	return nil
}

func (s *SecretSource) apply(sec *corev1.Secret) {
	c, err := parse(sec.Data)
	if err != nil {
		s.h.fail(fmt.Errorf("%w (Secret %s/%s)", err, s.namespace, s.name))
		return
	}
	s.h.set(c)
}

// run keeps a watch open from rv; "" starts from the current state (the API server sends the Secret
// as an ADDED event first).
func (s *SecretSource) run(ctx context.Context, rv string) {
	defer close(s.done)
	failures := 0
	for ctx.Err() == nil {
		from := rv
		next, progressed, err := s.watchOnce(ctx, rv)
		rv = next
		if progressed {
			failures = 0
		}
		switch {
		case err == nil && progressed, isGone(err) && from != "":
			// A watch that ended normally (its timeout) is re-opened at once, and one too old to
			// resume restarts at once from the current state.
			continue
		case err != nil:
			s.h.fail(fmt.Errorf("credentials: watching Secret %s/%s: %w", s.namespace, s.name, err))
		}
		failures++
		if !s.sleep(ctx, s.backoff(failures)) {
			return
		}
	}
}

// watchOnce runs one watch until it ends. It returns the resource version to resume from, whether
// the watch delivered anything, and why it failed (nil when it just ended).
func (s *SecretSource) watchOnce(ctx context.Context, rv string) (string, bool, error) {
	timeout := int64(watchTimeout / time.Second)
	w, err := s.c.CoreV1().Secrets(s.namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:       fields.OneTermEqualSelector("metadata.name", s.name).String(),
		ResourceVersion:     rv,
		AllowWatchBookmarks: true,
		TimeoutSeconds:      &timeout,
	})
	if isGone(err) {
		return "", false, err
	} else if err != nil {
		return rv, false, err
	}
	defer w.Stop()
	progressed := false
	for {
		select {
		case <-ctx.Done():
			return rv, progressed, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, progressed, nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if sec, ok := ev.Object.(*corev1.Secret); ok {
					s.apply(sec)
					rv, progressed = sec.ResourceVersion, true
				}
			case watch.Deleted:
				if sec, ok := ev.Object.(*corev1.Secret); ok {
					s.h.clear(s.notFound())
					rv, progressed = sec.ResourceVersion, true
				}
			case watch.Bookmark:
				if sec, ok := ev.Object.(*corev1.Secret); ok {
					rv, progressed = sec.ResourceVersion, true
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if isGone(err) {
					// Too old to resume: start again from the current state.
					return "", progressed, err
				}
				return rv, progressed, err
			}
		}
	}
}

func isGone(err error) bool { return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) }

// backoff is the delay before attempt n (n >= 1): doubling from minBackoff, capped, with ±10% jitter so
// that many pods do not come back in step.
func (s *SecretSource) backoff(n int) time.Duration {
	d := s.minBackoff
	for i := 1; i < n && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64())) //nolint:gosec // jitter, not a secret
}

func (s *SecretSource) sleep(ctx context.Context, d time.Duration) bool {
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
