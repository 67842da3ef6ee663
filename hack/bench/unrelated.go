package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// phase1 measures the manager's settled RSS without and with o.unrelated Secrets of 1 MiB, a fresh
// process each time so that its initial LIST includes them.
func phase1(ctx context.Context, c client.Client, mgr *harness.Manager, o options, res *Results) error {
	logf("phase 1: manager started without unrelated Secrets; waiting for it to settle")
	base, err := settle(ctx, mgr, 0)
	if err != nil {
		return err
	}
	res.RSSBaselineBytes, res.HWMBaselineBytes, res.HeapBaselineBytes = base.rss, base.hwm, base.heap
	logf("phase 1: baseline RSS %s (peak %s, Go heap in use %s)", mib(base.rss), mib(base.hwm), mib(base.heap))
	if err := mgr.Stop(); err != nil {
		return fmt.Errorf("stopping the manager: %w", err)
	}

	logf("phase 1: creating %d unrelated Secrets of 1 MiB in namespace %s", o.unrelated, nsUnrelated)
	t0 := time.Now()
	if err := createUnrelated(ctx, c, o.unrelated, o.labelled, o.creators); err != nil {
		return err
	}
	res.UnrelatedCreateSecs = time.Since(t0).Seconds()
	logf("phase 1: created in %s; starting the manager again", secs(res.UnrelatedCreateSecs))

	offset := len(mgr.Logs())
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	with, err := settle(ctx, mgr, offset)
	if err != nil {
		return err
	}
	res.RSSWithUnrelatedBytes, res.HWMWithUnrelatedBytes, res.HeapWithUnrelated = with.rss, with.hwm, with.heap
	res.UnrelatedAddedBytes = with.rss - base.rss
	logf("phase 1: with %d unrelated Secrets RSS %s (peak %s, Go heap in use %s): %s",
		o.unrelated, mib(with.rss), mib(with.hwm), mib(with.heap), signedMiB(res.UnrelatedAddedBytes))
	return nil
}

// createUnrelated creates n Secrets of 1 MiB, the first labelled of them with the operator's managed-by
// label (nothing of the operator's owns them).
func createUnrelated(ctx context.Context, c client.Client, n, labelled, workers int) error {
	if err := createNamespace(ctx, c, nsUnrelated); err != nil {
		return err
	}
	blob := make([]byte, unrelatedSecretSize)
	_, _ = rand.Read(blob)
	return parallel(ctx, n, workers, func(i int) error {
		labels := map[string]string{"app.kubernetes.io/part-of": "some-other-app"}
		if i < labelled {
			labels[v1alpha1.ManagedByLabel] = v1alpha1.ManagedByValue
		}
		return create(ctx, c, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsUnrelated, Name: fmt.Sprintf("unrelated-%04d", i),
				Labels: labels},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"blob": blob},
		})
	})
}
