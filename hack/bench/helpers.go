package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Helpers every phase uses: creating objects under load, in parallel, and small counting helpers.

// createSecret creates the Secret name in the benchmark's namespace with data.
func createSecret(ctx context.Context, c client.Client, name string, data map[string]string) error {
	b := make(map[string][]byte, len(data))
	for k, v := range data {
		b[k] = []byte(v)
	}
	return create(ctx, c, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsApps, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       b,
	})
}

func createNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// create creates obj, retrying what the API server may answer under load.
func create(ctx context.Context, c client.Client, obj client.Object) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.Create(ctx, obj)
		if err == nil || ctx.Err() != nil {
			return err
		}
		retriable := apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
			apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
		if !retriable || attempt == 5 {
			return fmt.Errorf("create %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay *= 2
		obj.SetResourceVersion("")
	}
}

// parallel calls fn(0..n-1) from workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// copyFile copies from to path, readable by the owner only.
func copyFile(from, path string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// over waits d, then returns what read returns and how many seconds really passed.
func over[T any](ctx context.Context, d time.Duration, read func() (T, error)) (T, float64, error) {
	start := time.Now()
	if err := sleep(ctx, d); err != nil {
		var zero T
		return zero, 0, err
	}
	v, err := read()
	return v, time.Since(start).Seconds(), err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
