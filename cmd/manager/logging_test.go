package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Issue 8 scenario 18: the production logger sampled (after 100 equal messages a second only every
// 100th), and dropped 699 of 1,000 "Token written" lines in the benchmark. Every line is written.
func TestProductionLoggerDoesNotSample(t *testing.T) {
	for _, dev := range []bool{false, true} {
		var buf bytes.Buffer
		log := newLogger(zap.Options{Development: dev}, &buf)
		for i := range 1000 {
			log.Info("Token written", "i", i)
		}
		if n := strings.Count(buf.String(), "Token written"); n != 1000 {
			t.Errorf("development=%v: %d of 1000 lines written", dev, n)
		}
		// Levels still filter: V(1) is below the production default (info).
		before := buf.Len()
		log.V(1).Info("debug line")
		if !dev && buf.Len() != before {
			t.Errorf("development=%v: a V(1) line was written at the default level", dev)
		}
	}
}

// The --zap-log-level flag still decides what is written once sampling is off.
func TestLoggerHonoursLevelFlag(t *testing.T) {
	for _, tc := range []struct {
		level      string
		info, v1   bool
		errorLines bool
	}{
		{"info", true, false, true},
		{"debug", true, true, true},
		{"error", false, false, true},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var opts zap.Options
		opts.BindFlags(fs)
		if err := fs.Parse([]string{"--zap-log-level=" + tc.level}); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		log := newLogger(opts, &buf)
		log.Info("info line")
		log.V(1).Info("v1 line")
		log.Error(nil, "error line")
		out := buf.String()
		if got := strings.Contains(out, "info line"); got != tc.info {
			t.Errorf("level %s: info written = %v", tc.level, got)
		}
		if got := strings.Contains(out, "v1 line"); got != tc.v1 {
			t.Errorf("level %s: V(1) written = %v", tc.level, got)
		}
		if got := strings.Contains(out, "error line"); got != tc.errorLines {
			t.Errorf("level %s: error written = %v", tc.level, got)
		}
	}
}
