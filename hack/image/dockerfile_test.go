package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerStage is one FROM of the Dockerfile and the instructions under it.
type dockerStage struct {
	from, name string
	lines      []string
}

// parseDockerfile returns the global ARG defaults and the stages, with ${ARG} in FROM resolved.
func parseDockerfile(t *testing.T) (map[string]string, []dockerStage) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	var stages []dockerStage
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if len(stages) == 0 {
				k, v, _ := strings.Cut(fields[1], "=")
				args[k] = v
			}
		case "FROM":
			st := dockerStage{}
			for _, f := range fields[1:] {
				if strings.HasPrefix(f, "--") {
					continue
				}
				if strings.EqualFold(f, "AS") {
					continue
				}
				if st.from == "" {
					st.from = os.Expand(f, func(k string) string { return args[k] })
				} else {
					st.name = f
				}
			}
			stages = append(stages, st)
		default:
			if len(stages) > 0 {
				stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
			}
		}
	}
	return args, stages
}

var pinned = regexp.MustCompile(`^[a-z0-9./-]+(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}$`)

// Every base image of the Dockerfile is pinned by digest (a stage built on an earlier stage is not a
// base image).
func TestDockerfileBaseImagesArePinnedByDigest(t *testing.T) {
	_, stages := parseDockerfile(t)
	names := map[string]bool{}
	if len(stages) < 2 {
		t.Fatalf("parsed %d stages", len(stages))
	}
	for _, st := range stages {
		if !names[st.from] && !pinned.MatchString(st.from) {
			t.Errorf("FROM %s (stage %s) is not pinned by digest (image:tag@sha256:<64 hex>)", st.from, st.name)
		}
		names[st.name] = true
	}
}

// The operator image holds the manager only: its stage copies one file, the manager binary, from a
// stage that builds ./cmd/manager alone; the simulator has stages of its own. And the manager does not
// link the simulator's code either.
func TestManagerImageHasNoSimulator(t *testing.T) {
	_, stages := parseDockerfile(t)
	byName := map[string]dockerStage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	mgr, ok := byName["manager"]
	if !ok || stages[len(stages)-1].name != "manager" {
		t.Fatalf("the Dockerfile's last stage is not manager: %+v", stages[len(stages)-1])
	}
	var copies []string
	for _, l := range mgr.lines {
		if strings.HasPrefix(strings.ToUpper(l), "COPY") {
			copies = append(copies, l)
		}
		if strings.Contains(l, "sim") {
			t.Errorf("the manager stage mentions the simulator: %s", l)
		}
	}
	if len(copies) != 1 || copies[0] != "COPY --from=build-manager /out/manager /manager" {
		t.Errorf("the manager stage copies %q, want only the manager binary", copies)
	}
	for _, l := range byName["build-manager"].lines {
		if strings.HasPrefix(l, "RUN") && (!strings.Contains(l, "./cmd/manager") || strings.Contains(l, "sim")) {
			t.Errorf("build-manager runs %q, want a build of ./cmd/manager only", l)
		}
	}

	out, err := exec.Command("go", "list", "-deps", "github.com/credops/thingspace-operator/cmd/manager").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/internal/simulator") || strings.Contains(pkg, "/cmd/thingspace-sim") {
			t.Errorf("the manager binary links %s", pkg)
		}
	}
}

// The token sidecar's image holds the sidecar only: its stage copies one file from a stage that
// builds ./cmd/thingspace-proxy alone, and the binary links neither the simulator nor the
// operator's controllers.
func TestProxyImageHoldsTheProxyOnly(t *testing.T) {
	_, stages := parseDockerfile(t)
	byName := map[string]dockerStage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	var copies []string
	for _, l := range byName["proxy"].lines {
		if strings.HasPrefix(strings.ToUpper(l), "COPY") {
			copies = append(copies, l)
		}
	}
	if len(copies) != 1 || copies[0] != "COPY --from=build-proxy /out/thingspace-proxy /thingspace-proxy" {
		t.Errorf("the proxy stage copies %q, want only the proxy binary", copies)
	}
	var builds int
	for _, l := range byName["build-proxy"].lines {
		if strings.HasPrefix(l, "RUN") {
			builds++
			if !strings.HasSuffix(l, "./cmd/thingspace-proxy") {
				t.Errorf("build-proxy runs %q, want a build of ./cmd/thingspace-proxy only", l)
			}
		}
	}
	if builds != 1 {
		t.Errorf("build-proxy has %d RUN lines, want 1", builds)
	}

	out, err := exec.Command("go", "list", "-deps", "github.com/credops/thingspace-operator/cmd/thingspace-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/internal/simulator") || strings.Contains(pkg, "/internal/controller") {
			t.Errorf("the proxy binary links %s", pkg)
		}
	}
}
