package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/podium-dev/podium/internal/bundle"
)

// run runs the plugin without a cluster, for the commands that need none.
func run(args ...string) (stdout string, err error) {
	var out, errOut bytes.Buffer
	cmd := newRootCommand(&root{
		streams: genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut},
		now:     time.Now,
	})
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), err
}

func TestEveryCommandHelpHasExamples(t *testing.T) {
	for _, name := range []string{"register", "compare", "promote", "approve", "rollback", "pause", "resume", "abort", "history", "status", "digest"} {
		out, err := run(name, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", name, err)
		}
		_, examples, _ := strings.Cut(out, "\nExamples:\n")
		if !strings.Contains(examples, "  kubectl podium "+name+" ") {
			t.Errorf("%s --help shows no example of kubectl podium %s:\n%s", name, name, out)
		}
	}
}

func TestDigestPrintsTheBundleDigest(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"model.pkl": "model", "scalers.pkl": "scalers", "meta/metadata.pkl": "metadata"} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := bundle.Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := run("digest", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got != want+"\n" {
		t.Errorf("digest printed %q, want %q", got, want+"\n")
	}
}

func TestDigestOfAMissingDirectoryFails(t *testing.T) {
	if _, err := run("digest", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("digest of a missing directory succeeded")
	}
}
