// Command release builds the kubectl-podium plugin's release archives, one tar.gz per platform
// holding the binary, and the krew plugin manifest that names them by URL and SHA-256, so that
// `kubectl krew install --manifest=podium.yaml` (or, once in an index, `kubectl krew install
// podium`) installs the plugin. The archives are reproducible: the binary is built with
// -trimpath and without VCS stamps or build IDs, and the archive's entries and gzip stream carry
// no time.
//
//	go run ./hack/release -version v0.1.0 -out bin/release
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/podium-dev/podium/hack/gobuild"
)

// options are the command's flags.
type options struct {
	version   string
	out       string
	platforms []string
	baseURL   string // where the archives are downloaded from, the version appended
}

func main() {
	var o options
	var platforms string
	flag.StringVar(&o.version, "version", "", "the release's version, such as v0.1.0")
	flag.StringVar(&o.out, "out", "bin/release", "the directory to write the archives and podium.yaml to")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64",
		"the platforms to build, comma-separated")
	flag.StringVar(&o.baseURL, "base-url", "https://github.com/podium-dev/podium/releases/download",
		"the URL the archives are published under, followed by /VERSION/ARCHIVE")
	changelog := flag.String("changelog", "CHANGELOG.md", "the changelog whose section for -version becomes notes.md")
	flag.Parse()
	o.platforms = strings.Split(platforms, ",")
	if err := writeNotes(*changelog, o.version, filepath.Join(o.out, "notes.md")); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	manifest, err := release(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	fmt.Println(manifest)
}

// writeNotes writes the changelog's section for version to path: the release notes.
func writeNotes(changelog, version, path string) error {
	data, err := os.ReadFile(changelog)
	if err != nil {
		return err
	}
	notes, err := releaseNotes(string(data), version)
	if err != nil {
		return fmt.Errorf("%s: %w", changelog, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(notes), 0o644)
}

// releaseNotes is the section of the changelog headed "## VERSION" (with or without its v, and
// with anything after the version on the heading's line), up to the next "## " heading.
func releaseNotes(changelog, version string) (string, error) {
	var section []string
	in := false
	for line := range strings.Lines(changelog) {
		if heading, ok := strings.CutPrefix(line, "## "); ok {
			if in {
				break
			}
			name, _, _ := strings.Cut(strings.TrimSpace(heading), " ")
			in = name == version || "v"+name == version
			continue
		}
		if in {
			section = append(section, line)
		}
	}
	notes := strings.TrimSpace(strings.Join(section, ""))
	if notes == "" {
		return "", fmt.Errorf("no section for %s: rename its \"## Unreleased\" heading to \"## %s\" before tagging",
			version, version)
	}
	return notes + "\n", nil
}

// release writes the archives and the krew manifest, and returns the manifest's path.
func release(ctx context.Context, o options) (string, error) {
	if !strings.HasPrefix(o.version, "v") {
		return "", fmt.Errorf("-version %q: krew wants a semantic version with a leading v, such as v0.1.0", o.version)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", err
	}
	plugin := krewPlugin{APIVersion: "krew.googlecontainertools.github.com/v1alpha2", Kind: "Plugin"}
	plugin.Metadata.Name = "podium"
	plugin.Spec = krewSpec{
		Version:          o.version,
		Homepage:         "https://github.com/podium-dev/podium",
		ShortDescription: "Register, compare, promote and roll back ML model versions",
		Description: "kubectl podium works with Podium's RegisteredModels and ModelVersions: it registers versions,\n" +
			"compares their metrics, promotes and rolls back with the operator's quality gates, runs and\n" +
			"aborts canary rollouts, and shows a model's status and history.\n",
	}
	for _, p := range o.platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return "", fmt.Errorf("platform %q: want os/arch, such as darwin/arm64", p)
		}
		bin := "kubectl-podium"
		if goos == "windows" {
			bin += ".exe"
		}
		archive := fmt.Sprintf("kubectl-podium_%s_%s_%s.tar.gz", o.version, goos, goarch)
		data, err := gobuild.Static(ctx, "github.com/podium-dev/podium/cmd/kubectl-podium", goos, goarch)
		if err != nil {
			return "", err
		}
		tgz, err := tarball(bin, data)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(o.out, archive), tgz, 0o644); err != nil {
			return "", err
		}
		sum := sha256.Sum256(tgz)
		plugin.Spec.Platforms = append(plugin.Spec.Platforms, krewPlatform{
			Selector: krewSelector{MatchLabels: map[string]string{"os": goos, "arch": goarch}},
			URI:      strings.TrimSuffix(o.baseURL, "/") + "/" + o.version + "/" + archive,
			SHA256:   hex.EncodeToString(sum[:]),
			Bin:      bin,
		})
	}
	data, err := yaml.Marshal(plugin)
	if err != nil {
		return "", err
	}
	path := filepath.Join(o.out, "podium.yaml")
	return path, os.WriteFile(path, data, 0o644)
}

// The krew plugin manifest (krew.googlecontainertools.github.com/v1alpha2, kind Plugin).
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec krewSpec `json:"spec"`
}

type krewSpec struct {
	Version          string         `json:"version"`
	Homepage         string         `json:"homepage"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description"`
	Platforms        []krewPlatform `json:"platforms"`
}

type krewPlatform struct {
	Selector krewSelector `json:"selector"`
	URI      string       `json:"uri"`
	SHA256   string       `json:"sha256"`
	Bin      string       `json:"bin"`
}

type krewSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// tarball is a gzipped tar of one executable file, with no times.
func tarball(name string, data []byte) ([]byte, error) {
	var tarred bytes.Buffer
	tw := tar.NewWriter(&tarred)
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0),
		Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarred.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}
