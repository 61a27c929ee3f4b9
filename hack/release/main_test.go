package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func readPlugin(t *testing.T, path string) krewPlugin {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p krewPlugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKrewInstallsThePluginFromTheRelease builds the linux/amd64 archive twice (the same bytes),
// checks the manifest against it, and installs it with the real krew, as a user would, into a
// krew root of the test's own; the installed kubectl-podium runs.
func TestKrewInstallsThePluginFromTheRelease(t *testing.T) {
	ctx := context.Background()
	platform := "linux/amd64"
	o := options{version: "v0.0.1", out: t.TempDir(), platforms: []string{platform},
		baseURL: "https://example.com/podium/releases/download"}
	manifest, err := release(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	plugin := readPlugin(t, manifest)
	if plugin.Metadata.Name != "podium" || plugin.Spec.Version != "v0.0.1" || len(plugin.Spec.Platforms) != 1 {
		t.Fatalf("manifest: %+v", plugin)
	}
	p := plugin.Spec.Platforms[0]
	archive := filepath.Join(o.out, "kubectl-podium_v0.0.1_linux_amd64.tar.gz")
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if p.SHA256 != hex.EncodeToString(sum[:]) || p.Bin != "kubectl-podium" ||
		p.URI != "https://example.com/podium/releases/download/v0.0.1/kubectl-podium_v0.0.1_linux_amd64.tar.gz" ||
		p.Selector.MatchLabels["os"] != "linux" || p.Selector.MatchLabels["arch"] != "amd64" {
		t.Fatalf("platform %+v, archive sha256 %x", p, sum)
	}
	o.out = t.TempDir()
	if _, err := release(ctx, o); err != nil {
		t.Fatal(err)
	}
	if again := readPlugin(t, filepath.Join(o.out, "podium.yaml")); again.Spec.Platforms[0].SHA256 != p.SHA256 {
		t.Fatalf("two builds of the same source: sha256 %s and %s", p.SHA256, again.Spec.Platforms[0].SHA256)
	}

	krew := os.Getenv("PODIUM_KREW")
	if krew == "" {
		t.Skip("PODIUM_KREW is not set: run `make test-unit` (or set it to the path hack/krew.sh prints)")
	}
	root := t.TempDir()
	cmd := exec.Command(krew, "install", "--manifest="+manifest, "--archive="+archive)
	cmd.Env = append(os.Environ(), "KREW_ROOT="+root, "HOME="+root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl-podium"), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubectl podium works with Podium's RegisteredModels") {
		t.Fatalf("the installed plugin: %v\n%s", err, out)
	}
}

func TestAVersionNeedsItsLeadingV(t *testing.T) {
	if _, err := release(context.Background(), options{version: "0.1.0", out: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "leading v") {
		t.Fatalf("version 0.1.0: %v", err)
	}
}

// TestTheReleaseWorkflowPassesActionlint checks .github/workflows with the real actionlint, and
// that actionlint does refuse a broken workflow (an unknown context property).
func TestTheReleaseWorkflowPassesActionlint(t *testing.T) {
	actionlint := os.Getenv("PODIUM_ACTIONLINT")
	if actionlint == "" {
		t.Skip("PODIUM_ACTIONLINT is not set: run `make test-unit` (or set it to the path hack/actionlint.sh prints)")
	}
	workflow := filepath.Join("..", "..", ".github", "workflows", "release.yml")
	if out, err := exec.Command(actionlint, "-color=false", workflow).CombinedOutput(); err != nil {
		t.Fatalf("actionlint %s: %v\n%s", workflow, err, out)
	}
	data, err := os.ReadFile(workflow)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "broken.yml")
	if err := os.WriteFile(broken, []byte(strings.Replace(string(data), "github.repository_owner",
		"github.repository_owners", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(actionlint, "-color=false", broken).CombinedOutput(); err == nil {
		t.Fatalf("actionlint passed a workflow with an unknown property:\n%s", out)
	}
}

// TestThePluginInstallsFromACleanModuleCache builds kubectl-podium as `go install` builds a
// module: from the committed files only (the working tree's tracked changes included, nothing
// untracked or generated on the way), with an empty module cache filled from the module proxy
// protocol (here the local download cache, so that the test needs no network), and go.sum as
// it is (-mod=readonly). The plugin it builds runs; its dashboard's pages are embedded, which
// fails the build when they are not in the module.
func TestThePluginInstallsFromACleanModuleCache(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	repo := strings.TrimSpace(string(root))
	rev, err := exec.Command("git", "-C", repo, "stash", "create").Output()
	if err != nil {
		t.Fatal(err)
	}
	commit := cmp.Or(strings.TrimSpace(string(rev)), "HEAD")
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", repo, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive: %v\n%s", err, out)
	}
	downloads, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	install := exec.Command("go", "install", "./cmd/kubectl-podium")
	install.Dir = src
	install.Env = append(os.Environ(), "GOMODCACHE="+filepath.Join(t.TempDir(), "mod"), "GOBIN="+bin,
		"GOPROXY=file://"+filepath.Join(strings.TrimSpace(string(downloads)), "cache", "download"),
		"GOSUMDB=off", "GOFLAGS=-mod=readonly -modcacherw", "GOWORK=off")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install ./cmd/kubectl-podium from a clean module cache: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "kubectl-podium"), "dashboard", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Serve the dashboard") {
		t.Fatalf("the installed plugin: %v\n%s", err, out)
	}
}

func TestTheReleaseNotesAreTheChangelogsSection(t *testing.T) {
	changelog := "# Changelog\n\n## Unreleased\n\n- next\n\n" +
		"## v0.2.0 (2026-12-07)\n\n- the dashboard\n- signed images\n\n" +
		"## 0.1.0\n\n- the first\n"
	for version, want := range map[string]string{
		"v0.2.0": "- the dashboard\n- signed images\n",
		"v0.1.0": "- the first\n",
	} {
		if got, err := releaseNotes(changelog, version); err != nil || got != want {
			t.Errorf("releaseNotes(%s) = %q, %v; want %q", version, got, err, want)
		}
	}
	if _, err := releaseNotes(changelog, "v0.3.0"); err == nil || !strings.Contains(err.Error(),
		`rename its "## Unreleased" heading to "## v0.3.0" before tagging`) {
		t.Errorf("a version without a section: %v", err)
	}
}
