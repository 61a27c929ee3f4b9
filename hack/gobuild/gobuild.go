// Package gobuild builds the static, reproducible Go binaries that the release tools package: the
// manager for its image (hack/image) and the plugin for its archives (hack/release).
package gobuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Static builds pkg for goos/goarch with CGO off, -trimpath, and no VCS stamp or build ID, so
// that the same source and toolchain give the same bytes, and returns the binary.
func Static(ctx context.Context, pkg, goos, goarch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "podium-gobuild-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	out := filepath.Join(dir, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=",
		"-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building %s for %s/%s: %w", pkg, goos, goarch, err)
	}
	return os.ReadFile(out)
}
