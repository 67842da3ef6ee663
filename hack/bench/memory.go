package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// Memory sampling: the manager's RSS once it has settled, and its peak and Go heap.

type memSample struct{ rss, hwm, heap int64 }

// settle waits until every controller of the manager has started its workers (so every cache it
// watches, including the metadata cache of all Secrets, has synced), then until the manager's RSS holds
// still, and returns its memory then. logOffset is where this process's part of the log begins.
func settle(ctx context.Context, mgr *harness.Manager, logOffset int) (memSample, error) {
	const (
		every     = 500 * time.Millisecond
		minWait   = 5 * time.Second
		window    = 6 // samples: 3 s
		tolerance = 512 << 10
		maxWait   = 30 * time.Second
	)
	err := harness.WaitFor(ctx, 90*time.Second, 100*time.Millisecond, func() (bool, error) {
		if !mgr.Running() {
			return false, errors.New("the manager exited; log " + mgr.LogPath)
		}
		return controllersStarted(mgr.Logs(), logOffset), nil
	})
	if err != nil {
		return memSample{}, fmt.Errorf("waiting for the manager's controllers to start: %w", err)
	}
	start := time.Now()
	var samples []int64
	for {
		rss := mgr.RSS()
		if rss == 0 {
			return memSample{}, errors.New("the manager exited; log " + mgr.LogPath)
		}
		samples = append(samples, rss)
		// A controller that began starting after the others had finished shows up here.
		if len(samples) >= window && time.Since(start) >= minWait && controllersStarted(mgr.Logs(), logOffset) {
			last := samples[len(samples)-window:]
			if slices.Max(last)-slices.Min(last) <= tolerance || time.Since(start) >= maxWait {
				var total int64
				for _, v := range last {
					total += v
				}
				hwm, _, heap := readMem(mgr)
				return memSample{rss: total / window, hwm: hwm, heap: heap}, nil
			}
		}
		if err := sleep(ctx, every); err != nil {
			return memSample{}, err
		}
	}
}

// controllersStarted reports whether, in logs past offset, every controller that logged "Starting
// EventSource" has also logged "Starting workers", which controller-runtime does once its sources
// have synced.
func controllersStarted(logs string, offset int) bool {
	if offset > len(logs) {
		offset = 0
	}
	sources, workers := map[string]bool{}, map[string]bool{}
	for line := range strings.SplitSeq(logs[offset:], "\n") {
		var e struct {
			Msg        string `json:"msg"`
			Controller string `json:"controller"`
		}
		if !strings.Contains(line, `"Starting `) || json.Unmarshal([]byte(line), &e) != nil || e.Controller == "" {
			continue
		}
		switch e.Msg {
		case "Starting EventSource":
			sources[e.Controller] = true
		case "Starting workers":
			workers[e.Controller] = true
		}
	}
	if len(sources) == 0 {
		return false
	}
	for c := range sources {
		if !workers[c] {
			return false
		}
	}
	return true
}

// readMem returns the manager's peak RSS (VmHWM), its RSS and its Go heap in use.
func readMem(mgr *harness.Manager) (peak, rss, heap int64) {
	peak, rss = mgr.PeakRSS(), mgr.RSS()
	if expo, err := mgr.Metrics(); err == nil {
		if v, ok := harness.MetricValue(expo, "go_memstats_heap_inuse_bytes", nil); ok {
			heap = int64(v)
		}
	}
	return peak, rss, heap
}
