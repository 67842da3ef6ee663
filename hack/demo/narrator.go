package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/hack/internal/cloud"
	"github.com/credops/thingspace-operator/test/harness"
)

type narrator struct {
	c         client.Client
	sim       *harness.Sim
	ns        string
	lifetime  time.Duration
	keepAlive time.Duration
	order     []string
	apps      map[string]*appView
	// The M2MSessions, in the order of the samples.
	sessionOrder []string
	sessions     map[string]*sessionView
	// The CloudAuthorizations, in the order of the samples, and the person who consents.
	cloudOrder []string
	clouds     map[string]*cloudView
	person     *cloud.Person
	start      time.Time
	warned     bool
	// Last counts the simulator reported.
	requests, revokes int
}

// run polls the ThingSpaceApps and their Secrets until ctx ends or d (when positive) has passed.
func (n *narrator) run(ctx context.Context, d time.Duration) error {
	n.start = time.Now()
	if d > 0 {
		say("Watching for %s (--duration). Ctrl-C stops earlier.", d)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	} else {
		say("Watching. Ctrl-C stops the demo.")
	}
	for {
		n.observeAll(ctx, n.order, func(name string) error { return n.observeApp(ctx, n.apps[name]) })
		// After the apps: a token change seen in an app's Secret this round can be matched in the
		// session Secret at once.
		n.observeAll(ctx, n.sessionOrder, func(name string) error { return n.observeSession(ctx, n.sessions[name]) })
		n.observeAll(ctx, n.cloudOrder, func(name string) error { return n.observeCloud(ctx, n.clouds[name]) })
		select {
		case <-ctx.Done():
			fmt.Println()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				say("%s have passed.", d)
				return nil
			}
			say("Interrupted.")
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// observeAll observes each of names, warning once when one cannot be read.
func (n *narrator) observeAll(ctx context.Context, names []string, observe func(name string) error) {
	for _, name := range names {
		if err := observe(name); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !n.warned {
				say("(could not read %s: %v; retrying)", name, err)
				n.warned = true
			}
		}
	}
}

// narrateCondition prints condition typ of the object name when its status or reason differs from
// *last ("True (TokenValid)"), and remembers it there.
func narrateCondition(name, typ string, conds []metav1.Condition, last *string) {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return
	}
	if r := string(c.Status) + " (" + c.Reason + ")"; r != *last {
		*last = r
		step("%s: %s=%s: %s", name, typ, r, c.Message)
	}
}

// secret reads the Secret name of the namespace: nil and no error while it does not exist.
func (n *narrator) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: name}, s); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return s, nil
}

// summary prints what was seen and, with --duration, fails when a step that fitted in it did not happen.
func (n *narrator) summary(o options) error {
	say("Summary after %s:", time.Since(n.start).Round(time.Second))
	missing := n.appSummary(o)
	missing = append(missing, n.sessionSummary(o)...)
	missing = append(missing, n.cloudSummary(o)...)
	if len(missing) > 0 {
		return fmt.Errorf("expected within %s but not seen: %s", o.duration, strings.Join(missing, "; "))
	}
	return nil
}
