package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// The manager as deployed: its GOMEMLIMIT and GOGC, and heap profiles through --pprof-bind-address.

// shippedGoMemLimit returns the GOMEMLIMIT the manager Deployment of config/manager sets, so that the
// benchmark measures the memory the shipped configuration uses (the Go runtime collects harder near it).
func shippedGoMemLimit(root string) (string, error) {
	v, err := shippedEnv(root, "GOMEMLIMIT")
	if err == nil && v == "" {
		err = fmt.Errorf("%s: no GOMEMLIMIT in the manager Deployment", filepath.Join(root, "config", "manager", "manager.yaml"))
	}
	return v, err
}

// shippedEnv returns the value the manager Deployment of config/manager gives the variable name ("" when
// it gives none): GOMEMLIMIT, GOGC.
func shippedEnv(root, name string) (string, error) {
	path := filepath.Join(root, "config", "manager", "manager.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for doc := range strings.SplitSeq(string(b), "\n---") {
		var d appsv1.Deployment
		if yaml.Unmarshal([]byte(doc), &d) != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.Name == name && e.Value != "" {
					return e.Value, nil
				}
			}
		}
	}
	return "", nil
}

// profiler saves heap profiles of the manager (its --pprof-bind-address) into dir.
type profiler struct {
	addr, dir string
	saved     []string
}

// cpu saves a CPU profile of the manager's next d as cpu-<name>.pb.gz and logs its top functions; it
// returns at once (the profile is taken in the background).
func (p *profiler) cpu(ctx context.Context, name string, d time.Duration) {
	if p == nil || p.addr == "" {
		return
	}
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.addr, int(d.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			logf("CPU profile %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			logf("CPU profile %s: %v (HTTP %d)", name, err, resp.StatusCode)
			return
		}
		path := filepath.Join(p.dir, "cpu-"+name+".pb.gz")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=30", path)
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run()
		logf("CPU profile %s saved in %s; top by cumulative time:\n%s", name, path, out.String())
	}()
}

// heap saves the manager's heap profile as heap-<name>.pb.gz and logs its top in-use allocations.
func (p *profiler) heap(ctx context.Context, name string) {
	if p == nil || p.addr == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/debug/pprof/heap", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logf("heap profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		logf("heap profile %s: %v (HTTP %d)", name, err, resp.StatusCode)
		return
	}
	path := filepath.Join(p.dir, "heap-"+name+".pb.gz")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		logf("heap profile %s: %v", name, err)
		return
	}
	p.saved = append(p.saved, path)
	// The top in-use functions, for the log; `go tool pprof` reads the file for more.
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=25", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if cmd.Run() == nil {
		logf("heap profile %s saved in %s; top in use:\n%s", name, path, out.String())
	} else {
		logf("heap profile %s saved in %s", name, path)
	}
}
