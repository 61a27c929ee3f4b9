package bundle

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newDest is a destination in a directory of its own, so that wantNothing can see leftovers.
func newDest(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "model")
}

// readTree reads every file below dir, by slash-separated relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func digestOf(t *testing.T, files map[string]string) string {
	t.Helper()
	d, err := Digest(writeBundle(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// wantBundle checks that dest holds exactly the files, readable by any user, and nothing is left
// beside it.
func wantBundle(t *testing.T, dest string, files map[string]string) {
	t.Helper()
	if got := readTree(t, dest); !maps.Equal(got, files) {
		t.Fatalf("dest holds %v, want %v", keys(got), keys(files))
	}
	if d, want := mustDigest(t, dest), digestOf(t, files); d != want {
		t.Fatalf("digest of dest = %s, want %s", d, want)
	}
	info, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o755 {
		t.Errorf("dest has mode %v, want 0755 so that the model server can read it as any user", info.Mode().Perm())
	}
	if names := dirNames(t, filepath.Dir(dest)); len(names) != 1 {
		t.Errorf("the destination's directory holds %v, want only %s", names, filepath.Base(dest))
	}
}

// wantNothing checks that a failed fetch left nothing: no dest and no temporary directory.
func wantNothing(t *testing.T, dest string) {
	t.Helper()
	if names := dirNames(t, filepath.Dir(dest)); len(names) != 0 {
		t.Fatalf("a failed fetch left %v in %s", names, filepath.Dir(dest))
	}
}

// wantError checks that err's message holds every part.
func wantError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one holding %q", parts)
	}
	t.Logf("error: %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not hold %q", err, p)
		}
	}
}

func mustDigest(t *testing.T, dir string) string {
	t.Helper()
	d, err := Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func keys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for name := range m {
		k = append(k, name)
	}
	return k
}

func fileURI(dir string) string { return "file://" + filepath.ToSlash(dir) + "/" }

func TestFetchFileBundle(t *testing.T) {
	uri, dest := fileURI(writeBundle(t, seedBundle)), newDest(t)
	if err := Fetch(t.Context(), uri, dest, Options{Digest: digestOf(t, seedBundle)}); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, seedBundle)
}

func TestFetchReplacesAnEarlierBundle(t *testing.T) {
	dest := newDest(t)
	if err := os.MkdirAll(filepath.Join(dest, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "old", "model.pkl"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Fetch(t.Context(), fileURI(writeBundle(t, seedBundle)), dest, Options{}); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, seedBundle)
}

func TestFetchRemovesWhatAnInterruptedFetchLeft(t *testing.T) {
	dest := newDest(t)
	stale := filepath.Join(filepath.Dir(dest), ".model.fetch-123")
	if err := os.MkdirAll(filepath.Join(stale, "half"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Fetch(t.Context(), fileURI(writeBundle(t, seedBundle)), dest, Options{}); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, seedBundle)
}

func TestFetchFileErrors(t *testing.T) {
	missing := fileURI(filepath.Join(t.TempDir(), "missing"))
	empty := fileURI(t.TempDir())
	for name, tc := range map[string]struct {
		uri  string
		want []string
	}{
		"missing directory": {missing, []string{"bundle " + missing + ": not found"}},
		"empty directory":   {empty, []string{"bundle " + empty + ": no objects under", "check spec.artifact.uri"}},
	} {
		t.Run(name, func(t *testing.T) {
			dest := newDest(t)
			wantError(t, Fetch(t.Context(), tc.uri, dest, Options{}), tc.want...)
			wantNothing(t, dest)
		})
	}
}

func TestFetchDigestMismatch(t *testing.T) {
	uri, dest := fileURI(writeBundle(t, seedBundle)), newDest(t)
	other := digestOf(t, map[string]string{"model.pkl": "another model"})
	err := Fetch(t.Context(), uri, dest, Options{Digest: other})
	wantError(t, err, "bundle "+uri+": digest "+digestOf(t, seedBundle)+" does not match spec.artifact.digest "+other)
	wantNothing(t, dest)
}

func TestFetchRefusesAMalformedDigest(t *testing.T) {
	uri, dest := fileURI(writeBundle(t, seedBundle)), newDest(t)
	err := Fetch(t.Context(), uri, dest, Options{Digest: "sha256:ABC"})
	wantError(t, err, "bundle "+uri+": spec.artifact.digest \"sha256:ABC\" is not")
	if _, err := os.Stat(filepath.Dir(dest)); err != nil {
		t.Fatal(err)
	}
	wantNothing(t, dest)
}

func TestFetchLimits(t *testing.T) {
	uri := fileURI(writeBundle(t, seedBundle)) // 3 files, 20 bytes
	for name, tc := range map[string]struct {
		opts Options
		want string
	}{
		"files": {Options{MaxFiles: 2}, "more than 2 files"},
		"bytes": {Options{MaxBytes: 19}, "more than 19 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			dest := newDest(t)
			wantError(t, Fetch(t.Context(), uri, dest, tc.opts), "bundle "+uri+": "+tc.want)
			wantNothing(t, dest)
		})
	}
	t.Run("exactly at the limits", func(t *testing.T) {
		dest := newDest(t)
		if err := Fetch(t.Context(), uri, dest, Options{MaxFiles: 3, MaxBytes: 20}); err != nil {
			t.Fatal(err)
		}
		wantBundle(t, dest, seedBundle)
	})
}

func TestFetchPVCIsMountedNotFetched(t *testing.T) {
	dest := newDest(t)
	wantError(t, Fetch(t.Context(), "pvc://models/battle/4", dest, Options{}), "bundle pvc://models/battle/4: ", "--verify")
	wantNothing(t, dest)
}

func TestVerify(t *testing.T) {
	dir := writeBundle(t, seedBundle)
	if err := Verify(dir, digestOf(t, seedBundle)); err != nil {
		t.Fatal(err)
	}
	other := digestOf(t, map[string]string{"model.pkl": "another model"})
	wantError(t, Verify(dir, other),
		"bundle "+dir+": digest "+digestOf(t, seedBundle)+" does not match spec.artifact.digest "+other)
	wantError(t, Verify(dir, "sha256:"+strings.Repeat("0", 63)), "bundle "+dir+": spec.artifact.digest", "is not")
	if err := os.Symlink("model.pkl", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	err := Verify(dir, digestOf(t, seedBundle))
	wantError(t, err, "bundle "+dir+": link is not a regular file")
	if strings.Count(err.Error(), dir) != 1 {
		t.Errorf("error %q names the directory more than once", err)
	}
}

func TestParseURI(t *testing.T) {
	for uri, want := range map[string]Location{
		"s3://ml-artifacts/battle-winner/4/": {Scheme: "s3", Bucket: "ml-artifacts", Prefix: "battle-winner/4/"},
		"s3://ml-artifacts/battle-winner/4":  {Scheme: "s3", Bucket: "ml-artifacts", Prefix: "battle-winner/4/"},
		"s3://ml-artifacts":                  {Scheme: "s3", Bucket: "ml-artifacts"},
		"gs://ml-artifacts/battle/4/":        {Scheme: "gs", Bucket: "ml-artifacts", Prefix: "battle/4/"},
		"azblob://models/battle/4":           {Scheme: "azblob", Bucket: "models", Prefix: "battle/4/"},
		"file:///srv/models/battle/4/":       {Scheme: "file", Bucket: "/srv/models/battle/4"},
		"pvc://model-store/battle/4/":        {Scheme: "pvc", Bucket: "model-store", Prefix: "battle/4"},
		"pvc://model-store":                  {Scheme: "pvc", Bucket: "model-store"},
		"https://example.com/b/4.tar.gz?x=1": {Scheme: "https"},
		"http://example.com/b/4.TGZ":         {Scheme: "http"},
	} {
		got, err := ParseURI(uri)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", uri, err)
		} else if got != want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", uri, got, want)
		}
	}
	for uri, want := range map[string]string{
		"https://example.com/b/4/":    "must name a .tar, .tar.gz or .tgz archive",
		"https://example.com/b/4.gz":  "must name a .tar, .tar.gz or .tgz archive",
		"ftp://example.com/b/4/":      `unsupported scheme "ftp"`,
		"s3:///battle/4/":             "names no bucket",
		"pvc:///battle/4/":            "names no claim",
		"s3://b/battle/4/?region=x":   "takes no query",
		"s3://key:secret@b/battle/4/": "takes no credentials",
		"file://srv/models/":          "file:///ABSOLUTE/PATH/",
	} {
		_, err := ParseURI(uri)
		wantError(t, err, "bundle "+Redact(uri)+": ", want)
	}
}
