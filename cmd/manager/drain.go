package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// The drain subcommand (`/manager drain --namespace N --deployment D --timeout 150s`) is the Helm
// chart's pre-delete hook: the production image holds /manager only, so the hook runs the manager
// binary. It scales the manager Deployment to 0 and waits until no manager pod is left, so that the
// manager's RBAC (deleted by helm right after the hook) outlives the pods' graceful shutdown, in which
// they store in-flight upstream answers: a rotated refresh token that cannot be stored is lost.
//
// It needs only get and update on deployments/scale (the Scale carries the pods' selector) and list on
// pods, in the Deployment's namespace.

// drainer scales one Deployment to 0 and waits for its pods to be gone.
type drainer struct {
	c                     client.Client
	namespace, deployment string
	timeout, interval     time.Duration
	log                   logr.Logger
}

// errDrainTimeout marks a drain that ran out of time with manager pods still running.
var errDrainTimeout = errors.New("manager pods still running")

// run returns nil once no pod of the Deployment runs (at once when the Deployment does not exist).
// API errors are retried until the timeout: the hook's RoleBinding may be a moment from effective.
func (d drainer) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	key := types.NamespacedName{Namespace: d.namespace, Name: d.deployment}
	var selector labels.Selector
	var lastErr error
	for selector == nil {
		sel, err := d.scaleToZero(ctx, key)
		switch {
		case apierrors.IsNotFound(err):
			d.log.Info("The Deployment does not exist: nothing to drain", "deployment", key)
			return nil
		case err == nil:
			selector = sel
			continue
		}
		lastErr = err
		d.log.Error(err, "Cannot scale the Deployment to 0 yet; retrying", "deployment", key)
		if !d.sleep(ctx) {
			return fmt.Errorf("scale Deployment %s to 0 within %s: %w", key, d.timeout, lastErr)
		}
	}

	began, reported := time.Now(), ""
	for {
		running, err := d.running(ctx, selector)
		if err == nil && len(running) == 0 {
			d.log.Info("No manager pod left", "deployment", key, "waited", time.Since(began).Round(time.Millisecond))
			return nil
		}
		if err != nil {
			lastErr = err
			d.log.Error(err, "Cannot list the manager pods; retrying", "deployment", key)
		} else if names := strings.Join(running, ","); names != reported {
			reported = names
			d.log.Info("Waiting for the manager pods to finish their graceful shutdown", "pods", running)
		}
		if !d.sleep(ctx) {
			if err != nil {
				return fmt.Errorf("list the pods of Deployment %s within %s: %w", key, d.timeout, lastErr)
			}
			return fmt.Errorf("%w after %s: %s (they may still be storing in-flight upstream answers, so the "+
				"uninstall stops here and leaves the manager's RBAC in place; see why with kubectl describe pod, "+
				"then uninstall again, or go ahead anyway with helm uninstall --no-hooks)",
				errDrainTimeout, d.timeout, strings.Join(running, ", "))
		}
	}
}

// scaleToZero sets the Deployment's scale to 0 replicas (unless it is already) and returns the
// selector of its pods.
func (d drainer) scaleToZero(ctx context.Context, key types.NamespacedName) (labels.Selector, error) {
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	scale := &autoscalingv1.Scale{}
	if err := d.c.SubResource("scale").Get(ctx, deploy, scale); err != nil {
		return nil, err
	}
	// An empty selector would select every pod of the namespace, this hook's own included.
	if scale.Status.Selector == "" {
		return nil, fmt.Errorf("deployment %s/%s reports no pod selector", key.Namespace, key.Name)
	}
	selector, err := labels.Parse(scale.Status.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s: selector %q: %w", key.Namespace, key.Name, scale.Status.Selector, err)
	}
	if scale.Spec.Replicas != 0 {
		was := scale.Spec.Replicas
		scale.Spec.Replicas = 0
		// resourceVersion is the one read: a conflict is an error, retried with a fresh read.
		if err := d.c.SubResource("scale").Update(ctx, deploy, client.WithSubResourceBody(scale)); err != nil {
			return nil, err
		}
		d.log.Info("Scaled the Deployment to 0", "deployment", key, "replicas", was)
	}
	return selector, nil
}

// running lists the pods of selector that have not terminated, sorted by name. A Failed pod (evicted,
// say) stays in the API until garbage-collected, but runs nothing, so it does not hold the drain up.
func (d drainer) running(ctx context.Context, selector labels.Selector) ([]string, error) {
	var pods corev1.PodList
	if err := d.c.List(ctx, &pods, client.InNamespace(d.namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// sleep waits one interval; false when ctx ends first.
func (d drainer) sleep(ctx context.Context) bool {
	t := time.NewTimer(d.interval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// parseDrainArgs reads the drain subcommand's flags.
func parseDrainArgs(args []string, stderr io.Writer) (drainer, error) {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := drainer{interval: time.Second}
	fs.StringVar(&d.namespace, "namespace", "", "Namespace of the manager Deployment (required).")
	fs.StringVar(&d.deployment, "deployment", "", "Name of the manager Deployment (required).")
	fs.DurationVar(&d.timeout, "timeout", 150*time.Second, "How long to wait for the manager pods to be gone; longer than their terminationGracePeriodSeconds (100).")
	if err := fs.Parse(args); err != nil {
		return d, err
	}
	switch {
	case d.namespace == "" || d.deployment == "":
		return d, errors.New("drain: --namespace and --deployment are required")
	case d.timeout <= 0:
		return d, errors.New("drain: --timeout must be positive")
	case fs.NArg() > 0:
		return d, fmt.Errorf("drain: unexpected arguments %v", fs.Args())
	}
	return d, nil
}

// drainMain runs the drain subcommand and returns the process's exit code: 0 drained, 1 not (timeout
// or API errors), 2 bad flags.
func drainMain(args []string) int {
	d, err := parseDrainArgs(args, os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		return 2
	}
	d.log = newLogger(zap.Options{}, os.Stderr).WithName("drain")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		d.log.Error(err, "No API server configuration")
		return 1
	}
	if d.c, err = client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme}); err != nil {
		d.log.Error(err, "Unable to create a client")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.run(ctx); err != nil {
		d.log.Error(err, "Drain failed")
		return 1
	}
	return 0
}
