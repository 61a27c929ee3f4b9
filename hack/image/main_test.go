package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/podium-dev/podium/internal/testregistry"
)

// testOptions build the small testdata/hello binary for two platforms, with a CA bundle of the
// test's own.
func testOptions(t *testing.T) options {
	t.Helper()
	certs := filepath.Join(t.TempDir(), "ca.crt")
	bundle := []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n")
	if err := os.WriteFile(certs, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	return options{pkg: "./testdata/hello", binary: "hello", platforms: []string{"linux/amd64", "linux/arm64"},
		caFile: certs, layout: filepath.Join(t.TempDir(), "layout"), tag: "test"}
}

func fetchJSON(t *testing.T, ctx context.Context, store content.Fetcher, desc ocispec.Descriptor, v any) {
	t.Helper()
	data, err := content.FetchAll(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func TestTheSameSourceGivesTheSameDigest(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t)
	first, err := build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o.layout = filepath.Join(t.TempDir(), "again")
	second, err := build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Digest != second.Digest {
		t.Fatalf("two builds of the same source: %s and %s", first.Digest, second.Digest)
	}
	if first.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("the build is a %s, want an image index", first.MediaType)
	}
}

func TestTheImageRunsAsNonrootWithNoShell(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t)
	desc, err := build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	store, err := oci.New(o.layout)
	if err != nil {
		t.Fatal(err)
	}
	if tagged, err := store.Resolve(ctx, "test"); err != nil || tagged.Digest != desc.Digest {
		t.Fatalf("the layout's tag test is %v (%v), want %s", tagged.Digest, err, desc.Digest)
	}
	var index ocispec.Index
	fetchJSON(t, ctx, store, desc, &index)
	platforms := make([]string, 0, len(index.Manifests))
	for _, m := range index.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		var manifest ocispec.Manifest
		fetchJSON(t, ctx, store, m, &manifest)
		var config ocispec.Image
		fetchJSON(t, ctx, store, manifest.Config, &config)
		if config.Config.User != "65532:65532" || !slices.Equal(config.Config.Entrypoint, []string{"/hello"}) ||
			config.Created != nil || config.Architecture != m.Platform.Architecture {
			t.Fatalf("%s: config %+v (created %v)", platforms[len(platforms)-1], config.Config, config.Created)
		}
		if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
			t.Fatalf("%d layers and %d diff IDs, want one of each", len(manifest.Layers), len(config.RootFS.DiffIDs))
		}
		files := layerFiles(t, ctx, store, manifest.Layers[0])
		want := map[string]int64{"etc/": 0o755, "etc/passwd": 0o644, "etc/group": 0o644, "etc/ssl/": 0o755,
			"etc/ssl/certs/": 0o755, "etc/ssl/certs/ca-certificates.crt": 0o644, "tmp/": 0o1777, "hello": 0o755}
		if len(files) != len(want) {
			t.Fatalf("the layer holds %v, want %v (no shell, nothing else)", files, want)
		}
		for name, mode := range want {
			if got, ok := files[name]; !ok || got != mode {
				t.Fatalf("the layer's %s has mode %o (present: %v), want %o", name, got, ok, mode)
			}
		}
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("the index names %v", platforms)
	}
}

func TestEachImageHasAnSBOMThatNamesWhatItWasBuiltFrom(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t)
	desc, err := build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	store, err := oci.New(o.layout)
	if err != nil {
		t.Fatal(err)
	}
	var index ocispec.Index
	fetchJSON(t, ctx, store, desc, &index)
	for _, m := range index.Manifests {
		referrers, err := registry.Referrers(ctx, store, m, MediaTypeSPDX)
		if err != nil || len(referrers) != 1 || referrers[0].ArtifactType != MediaTypeSPDX {
			t.Fatalf("the %s image's referrers: %+v (%v), want one SPDX SBOM", m.Platform.Architecture, referrers, err)
		}
		var manifest ocispec.Manifest
		fetchJSON(t, ctx, store, referrers[0], &manifest)
		if manifest.Subject == nil || manifest.Subject.Digest != m.Digest || len(manifest.Layers) != 1 {
			t.Fatalf("the SBOM's manifest: subject %+v, %d layers", manifest.Subject, len(manifest.Layers))
		}
		var doc spdxDocument
		fetchJSON(t, ctx, store, manifest.Layers[0], &doc)
		if doc.SPDXVersion != "SPDX-2.3" || doc.Name != "hello linux/"+m.Platform.Architecture ||
			len(doc.Packages) < 2 || doc.Packages[0].Name != "github.com/podium-dev/podium" ||
			doc.Packages[1].Name != "golang.org/toolchain" || doc.Packages[1].VersionInfo == "" {
			t.Fatalf("the SBOM: %+v", doc)
		}
	}
}

// layerFiles reads a gzipped layer: each entry's mode, checking that every one has the time 0
// and the owner root.
func layerFiles(t *testing.T, ctx context.Context, store content.Fetcher, desc ocispec.Descriptor) map[string]int64 {
	t.Helper()
	data, err := content.FetchAll(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 {
			t.Fatalf("%s: time %v, owner %d:%d; want time 0 and root", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		files[h.Name] = h.Mode
	}
}

func TestPushToARegistry(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	ctx := context.Background()
	o := testOptions(t)
	desc, err := build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o.push, o.plainHTTP = reg.Host+"/podium:v0.0.1", true
	if err := push(ctx, o); err != nil {
		t.Fatal(err)
	}
	repo, err := remote.NewRepository(reg.Host + "/podium")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	got, err := repo.Resolve(ctx, "v0.0.1")
	if err != nil || got.Digest != desc.Digest {
		t.Fatalf("the registry's v0.0.1 is %v (%v), want %s", got.Digest, err, desc.Digest)
	}
	var index ocispec.Index
	fetchJSON(t, ctx, repo, got, &index)
	for _, m := range index.Manifests {
		if ok, err := repo.Exists(ctx, m); err != nil || !ok {
			t.Fatalf("the %s image is not in the registry (%v)", m.Platform.Architecture, err)
		}
		var sboms []ocispec.Descriptor
		if err := repo.Referrers(ctx, m, MediaTypeSPDX, func(rs []ocispec.Descriptor) error {
			sboms = append(sboms, rs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(sboms) != 1 {
			t.Fatalf("the registry lists %d SPDX referrers of the %s image, want 1", len(sboms), m.Platform.Architecture)
		}
	}

	o.push = reg.Host + "/podium"
	if err := push(ctx, o); err == nil {
		t.Fatal("a reference without a tag was pushed")
	}
}

func TestAPlatformMustBeOSSlashArch(t *testing.T) {
	o := testOptions(t)
	o.platforms = []string{"arm64"}
	if _, err := build(context.Background(), o); err == nil {
		t.Fatal("platform arm64 was accepted")
	}
}

// cosign runs the pinned cosign (hack/cosign.sh) in dir, with no password on its keys and its
// state in dir, not in the user's home.
func cosign(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	bin := os.Getenv("PODIUM_COSIGN")
	if bin == "" {
		t.Skip("PODIUM_COSIGN is not set: run `make test-unit` (or set it to the path hack/cosign.sh prints)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
	return cmd.CombinedOutput()
}

// TestASignedImageVerifiesWithItsKeyOnly signs a pushed image as make image-sign does and
// verifies it as the docs show, with the real cosign and a real registry.
func TestASignedImageVerifiesWithItsKeyOnly(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if out, err := cosign(t, d, "generate-key-pair"); err != nil {
			t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
		}
	}
	reg := testregistry.Start(t, testregistry.Options{})
	ctx := context.Background()
	o := testOptions(t)
	desc, err := build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o.push, o.plainHTTP = reg.Host+"/podium:v0.0.1", true
	if err := push(ctx, o); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/podium@" + desc.Digest.String()
	if out, err := cosign(t, dir, "sign", "--yes", "--recursive", "--key", "cosign.key", "--tlog-upload=false",
		"--allow-http-registry", ref); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	store, err := oci.New(o.layout)
	if err != nil {
		t.Fatal(err)
	}
	var index ocispec.Index
	fetchJSON(t, ctx, store, desc, &index)
	verify := func(dir, ref string) ([]byte, error) {
		return cosign(t, dir, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "--allow-http-registry", ref)
	}
	for _, r := range []string{ref, reg.Host + "/podium@" + index.Manifests[1].Digest.String()} {
		if out, err := verify(dir, r); err != nil {
			t.Fatalf("cosign verify %s with the signing key: %v\n%s", r, err, out)
		}
		if out, err := verify(other, r); err == nil {
			t.Fatalf("cosign verify %s with another key passed:\n%s", r, out)
		}
	}

	// A tampered image pushed under the signed tag: another CA bundle, so another digest, unsigned.
	tampered := testOptions(t)
	if err := os.WriteFile(tampered.caFile, []byte("an attacker's CA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other2, err := build(ctx, tampered)
	if err != nil {
		t.Fatal(err)
	}
	tampered.push, tampered.plainHTTP = o.push, true
	if err := push(ctx, tampered); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(dir, o.push); err == nil || !strings.Contains(string(out), "no signatures found") {
		t.Fatalf("cosign verify of the tag %s, now a tampered image %s: %v, want no signatures found:\n%s",
			o.push, other2.Digest, err, out)
	}
	if out, err := verify(dir, ref); err != nil {
		t.Fatalf("the signed digest no longer verifies: %v\n%s", err, out)
	}
}
