package bundle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var seedBundle = map[string]string{"model.pkl": "model", "scalers.pkl": "scalers", "meta/metadata.pkl": "metadata"}

func TestDigestMatchesTheDocumentedShellCommand(t *testing.T) {
	dir := writeBundle(t, seedBundle)
	got, err := Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", `find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum`)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := DigestPrefix + strings.Fields(string(out))[0]
	if got != want {
		t.Fatalf("Digest = %s, the shell says %s", got, want)
	}
}

func TestDigestChangesWithAnyByteOrName(t *testing.T) {
	base, _ := Digest(writeBundle(t, seedBundle))
	changed := map[string]map[string]string{
		"a changed byte": {"model.pkl": "modeL", "scalers.pkl": "scalers", "meta/metadata.pkl": "metadata"},
		"a renamed file": {"model2.pkl": "model", "scalers.pkl": "scalers", "meta/metadata.pkl": "metadata"},
		"a missing file": {"model.pkl": "model", "scalers.pkl": "scalers"},
		"an extra file":  {"model.pkl": "model", "scalers.pkl": "scalers", "meta/metadata.pkl": "metadata", "x": ""},
		"a moved file":   {"model.pkl": "model", "scalers.pkl": "scalers", "metadata.pkl": "metadata"},
	}
	for name, files := range changed {
		t.Run(name, func(t *testing.T) {
			d, err := Digest(writeBundle(t, files))
			if err != nil {
				t.Fatal(err)
			}
			if d == base {
				t.Fatalf("digest did not change")
			}
		})
	}
	t.Run("empty directories do not count", func(t *testing.T) {
		dir := writeBundle(t, seedBundle)
		if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
			t.Fatal(err)
		}
		if d, _ := Digest(dir); d != base {
			t.Fatalf("an empty directory changed the digest")
		}
	})
}

func TestDigestRefusesSymlinks(t *testing.T) {
	dir := writeBundle(t, seedBundle)
	if err := os.Symlink("model.pkl", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	_, err := Digest(dir)
	if err == nil || !strings.Contains(err.Error(), "link is not a regular file") {
		t.Fatalf("err = %v", err)
	}
}
