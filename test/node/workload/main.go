// Command workload is the Go workload of the proof on the real node (test/node, TestWorkloads; issue
// 11 §4): an application that uses the operator's Secret the way the README recommends for Go, with
// pkg/credentials reading the Secret through the API (get/watch on that one Secret, which its Role
// allows by resourceNames) and its Transport setting the headers and retrying once on a rejection.
//
// It calls --url every --interval and prints what test/node reads from every workload of the proof:
// "F <call>" for each application call that failed (after the Transport's retry), "C <calls>
// <failed>" every 50 calls, and "E <call> <why>" with the status or error of a failure (never a
// credential: the Transport's errors carry none).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/credops/thingspace-operator/pkg/credentials"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("name", "", "the workload's name, sent as X-Workload so the upstream can tell workloads apart")
	url := flag.String("url", "", "the upstream URL to call")
	secret := flag.String("secret", "", "the operator's Secret to read, in the pod's namespace ($POD_NAMESPACE)")
	interval := flag.Duration("interval", 100*time.Millisecond, "pause between calls")
	maxWait := flag.Duration("max-wait", 30*time.Second, "longest wait of the Transport for a newer credential")
	flag.Parse()
	ns := os.Getenv("POD_NAMESPACE")
	if *name == "" || *url == "" || *secret == "" || ns == "" {
		return fmt.Errorf("--name, --url, --secret and $POD_NAMESPACE are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	cfg, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	src, err := credentials.NewSecretSource(ctx, cs, ns, *secret)
	if err != nil {
		return err
	}
	defer src.Close()
	hc := &http.Client{Transport: &credentials.Transport{Source: src, MaxWait: *maxWait}, Timeout: *maxWait + 10*time.Second}

	failed := 0
	for n := 1; ctx.Err() == nil; n++ {
		if why := call(ctx, hc, *url, *name); why != "" {
			failed++
			fmt.Printf("F %d\nE %d %s\n", n, n, why)
		}
		if n%50 == 0 {
			fmt.Printf("C %d %d\n", n, failed)
		}
		select {
		case <-ctx.Done():
		case <-time.After(*interval):
		}
	}
	return nil
}

// call makes one application call and says why it failed ("" when it did not).
func call(ctx context.Context, hc *http.Client, url, name string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("X-Workload", name)
	resp, err := hc.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return "status " + resp.Status
	}
	return ""
}
