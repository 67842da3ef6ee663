package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Environment variables naming prebuilt binaries, so repeated runs (or CI) skip the build.
const (
	ManagerBinEnv = "E2E_MANAGER_BIN"
	SimBinEnv     = "E2E_SIM_BIN"
)

// BuildBinaries builds ./cmd/manager and ./cmd/thingspace-sim into outDir with one go build and returns
// their paths. A binary named by E2E_MANAGER_BIN or E2E_SIM_BIN is used as is instead of being built.
func BuildBinaries(ctx context.Context, outDir string) (manager, sim string, err error) {
	manager, sim = os.Getenv(ManagerBinEnv), os.Getenv(SimBinEnv)
	var pkgs []string
	if manager == "" {
		pkgs = append(pkgs, "./cmd/manager")
	}
	if sim == "" {
		pkgs = append(pkgs, "./cmd/thingspace-sim")
	}
	for _, p := range []string{manager, sim} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("prebuilt binary: %w", err)
		}
	}
	if len(pkgs) == 0 {
		return manager, sim, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", "", err
	}
	// A trailing separator makes go build write one executable per package into the directory.
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", outDir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("go build %v: %w\n%s", pkgs, err, out.String())
	}
	if manager == "" {
		manager = filepath.Join(outDir, "manager")
	}
	if sim == "" {
		sim = filepath.Join(outDir, "thingspace-sim")
	}
	return manager, sim, nil
}

// StartWithBinaries starts the control plane while BuildBinaries builds into binDir: both take seconds.
// When the build fails, the control plane is stopped again and the build's error returned.
func StartWithBinaries(ctx context.Context, binDir string) (cp *ControlPlane, manager, sim string, err error) {
	type built struct {
		mgr, sim string
		err      error
	}
	bc := make(chan built, 1)
	go func() {
		m, s, err := BuildBinaries(ctx, binDir)
		bc <- built{m, s, err}
	}()
	cp, err = StartControlPlane(ctx)
	b := <-bc
	if err != nil {
		return nil, "", "", err
	}
	if b.err != nil {
		_ = cp.Stop()
		return nil, "", "", b.err
	}
	return cp, b.mgr, b.sim, nil
}
