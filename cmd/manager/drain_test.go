package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const drainNS = "tsop-system"

var managerLabels = map[string]string{"app.kubernetes.io/name": "thingspace-operator", "app.kubernetes.io/instance": "tsop"}

func managerDeployment(replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: drainNS, Name: "tsop-thingspace-operator"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: managerLabels},
		},
	}
}

func pod(ns, name string, lbls map[string]string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls}, Status: corev1.PodStatus{Phase: phase}}
}

var forbidden = apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments/scale"}, "tsop-thingspace-operator", errors.New("RBAC: not yet"))

// funcs makes the fake client answer as the API server does, failing the scale Get (failScale) or the
// pod List (failList) with Forbidden the first n times (n < 0: always).
//
// The fake client fills a Scale's status.selector with the LabelSelector's Go String() form; the API
// server writes the selector's label syntax (app.kubernetes.io/instance=tsop,...), so that is fixed up.
func funcs(failScale, failList int) interceptor.Funcs {
	var scaleCalls, listCalls atomic.Int32
	fail := func(n int, calls *atomic.Int32) bool { return n < 0 || int(calls.Add(1)) <= n }
	return interceptor.Funcs{
		SubResourceGet: func(ctx context.Context, c client.Client, sub string, obj, body client.Object, opts ...client.SubResourceGetOption) error {
			if fail(failScale, &scaleCalls) {
				return forbidden
			}
			if err := c.SubResource(sub).Get(ctx, obj, body, opts...); err != nil {
				return err
			}
			sel, err := metav1.LabelSelectorAsSelector(obj.(*appsv1.Deployment).Spec.Selector)
			body.(*autoscalingv1.Scale).Status.Selector = sel.String()
			return err
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if fail(failList, &listCalls) {
				return forbidden
			}
			return c.List(ctx, list, opts...)
		},
	}
}

func TestDrain(t *testing.T) {
	const timeout = 600 * time.Millisecond
	running := corev1.PodRunning
	for _, c := range []struct {
		name string
		objs []client.Object
		// kubelet deletes the manager pods this long after the Deployment reached 0 replicas (0: never).
		kubelet             time.Duration
		failScale, failList int
		wantErr             string // substring; "" means success
		timeout             bool   // want errDrainTimeout
		minTook             time.Duration
		replicas            int32 // the Deployment's replicas afterwards (when it exists)
	}{
		{name: "Deployment already gone", objs: nil},
		{name: "already at 0, no pods", objs: []client.Object{managerDeployment(0)}},
		{name: "scales to 0 and waits for the graceful shutdown", kubelet: 250 * time.Millisecond, minTook: 250 * time.Millisecond,
			objs: []client.Object{managerDeployment(2), pod(drainNS, "m-1", managerLabels, running), pod(drainNS, "m-2", managerLabels, corev1.PodPending)}},
		{name: "terminated, foreign and other namespaces' pods do not count",
			objs: []client.Object{managerDeployment(1),
				pod(drainNS, "evicted", managerLabels, corev1.PodFailed),
				pod(drainNS, "done", managerLabels, corev1.PodSucceeded),
				pod(drainNS, "workload", map[string]string{"app.kubernetes.io/name": "other", "app.kubernetes.io/instance": "tsop"}, running),
				pod("elsewhere", "m-1", managerLabels, running)}},
		{name: "timeout with a pod still running", timeout: true, minTook: timeout,
			wantErr: "m-stuck (they may still be storing in-flight upstream answers",
			objs:    []client.Object{managerDeployment(1), pod(drainNS, "m-stuck", managerLabels, running)}},
		{name: "RBAC not effective yet, then it is", failScale: 2, kubelet: 50 * time.Millisecond,
			objs: []client.Object{managerDeployment(1), pod(drainNS, "m-1", managerLabels, running)}},
		{name: "forbidden until the timeout", failScale: -1, wantErr: "scale Deployment tsop-system/tsop-thingspace-operator to 0 within 600ms: deployments/scale.apps \"tsop-thingspace-operator\" is forbidden",
			minTook: timeout, replicas: 1, objs: []client.Object{managerDeployment(1)}},
		{name: "listing pods fails once", failList: 1,
			objs: []client.Object{managerDeployment(1), pod(drainNS, "gone", managerLabels, corev1.PodSucceeded)}},
		{name: "listing pods forbidden until the timeout", failList: -1, wantErr: "list the pods of Deployment tsop-system/tsop-thingspace-operator within 600ms",
			minTook: timeout, objs: []client.Object{managerDeployment(1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(c.objs...).WithInterceptorFuncs(funcs(c.failScale, c.failList)).Build()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var log lines
			if c.kubelet > 0 {
				go kubelet(ctx, t, cl, c.kubelet)
			}
			d := drainer{c: cl, namespace: drainNS, deployment: "tsop-thingspace-operator", timeout: timeout, interval: 20 * time.Millisecond, log: log.logger()}
			began := time.Now()
			err := d.run(ctx)
			took := time.Since(began)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("drain: %v\n%s", err, &log)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("drain error %v, want one containing %q\n%s", err, c.wantErr, &log)
			case errors.Is(err, errDrainTimeout) != c.timeout:
				t.Errorf("errors.Is(%v, errDrainTimeout) = %v, want %v", err, !c.timeout, c.timeout)
			}
			if took < c.minTook || (c.minTook < timeout && took >= timeout) {
				t.Errorf("took %s, want at least %s and, unless timing out, less than %s", took, c.minTook, timeout)
			}
			var dep appsv1.Deployment
			if err := cl.Get(ctx, client.ObjectKey{Namespace: drainNS, Name: "tsop-thingspace-operator"}, &dep); err == nil && *dep.Spec.Replicas != c.replicas {
				t.Errorf("replicas %d afterwards, want %d", *dep.Spec.Replicas, c.replicas)
			}
		})
	}
}

// kubelet stands in for the ReplicaSet controller and the kubelet: once the Deployment is at 0
// replicas, it deletes the manager pods after grace (their graceful shutdown).
func kubelet(ctx context.Context, t *testing.T, c client.Client, grace time.Duration) {
	for ctx.Err() == nil {
		var dep appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: drainNS, Name: "tsop-thingspace-operator"}, &dep); err == nil && *dep.Spec.Replicas == 0 {
			time.Sleep(grace)
			if err := c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(drainNS), client.MatchingLabels(managerLabels)); err != nil {
				t.Errorf("delete the manager pods: %v", err)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseDrainArgs(t *testing.T) {
	for _, c := range []struct {
		args    []string
		wantErr string
		timeout time.Duration
	}{
		{args: []string{"--namespace", "ns", "--deployment", "d", "--timeout", "150s"}, timeout: 150 * time.Second},
		{args: []string{"--namespace=ns", "--deployment=d"}, timeout: 150 * time.Second},
		{args: []string{"--namespace=ns", "--deployment=d", "--timeout=2m30s"}, timeout: 150 * time.Second},
		{args: []string{"--namespace=ns"}, wantErr: "--namespace and --deployment are required"},
		{args: []string{"--deployment=d"}, wantErr: "--namespace and --deployment are required"},
		{args: []string{"--namespace=ns", "--deployment=d", "--timeout=0s"}, wantErr: "--timeout must be positive"},
		{args: []string{"--namespace=ns", "--deployment=d", "extra"}, wantErr: "unexpected arguments [extra]"},
		{args: []string{"--namspace=ns"}, wantErr: "flag provided but not defined"},
	} {
		d, err := parseDrainArgs(c.args, io.Discard)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%v: error %v, want %q", c.args, err, c.wantErr)
		case c.wantErr == "" && (d.namespace != "ns" || d.deployment != "d" || d.timeout != c.timeout || d.interval <= 0):
			t.Errorf("%v: parsed %+v", c.args, d)
		}
	}
}
