//go:build e2e

package e2e

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

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/podium-dev/podium/internal/testregistry"
)

// The image spec builds the real manager image as make image-push does (linux/amd64 only, to
// keep the tier short), pushes it to a real registry, pulls it back as a runtime would, unpacks
// its layer and runs the manager's fetch subcommand from that filesystem: the binary the
// prediction pods' init containers run. No container runtime runs here, so the unpacked binary
// is run on the host.
var _ = Describe("The manager image", func() {
	It("is pulled from a registry with its config, and its fetcher runs from its filesystem", func(ctx context.Context) {
		reg := testregistry.Start(GinkgoT(), testregistry.Options{})
		layout := GinkgoT().TempDir()
		// The build compiles the manager with -trimpath: minutes on a cold build cache.
		cmd := exec.CommandContext(ctx, "go", "run", "./hack/image", "-layout", layout, "-tag", "e2e",
			"-platforms", "linux/amd64", "-push", reg.Host+"/podium:e2e", "-plain-http")
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))

		repo, err := remote.NewRepository(reg.Host + "/podium")
		Expect(err).NotTo(HaveOccurred())
		repo.PlainHTTP = true
		fetchJSON := func(desc ocispec.Descriptor, v any) {
			data, err := content.FetchAll(ctx, repo, desc)
			Expect(err).NotTo(HaveOccurred())
			Expect(json.Unmarshal(data, v)).To(Succeed())
		}
		desc, err := repo.Resolve(ctx, "e2e")
		Expect(err).NotTo(HaveOccurred())
		var index ocispec.Index
		fetchJSON(desc, &index)
		Expect(index.Manifests).To(HaveLen(1))
		Expect(index.Manifests[0].Platform).To(HaveField("Architecture", "amd64"))
		var manifest ocispec.Manifest
		fetchJSON(index.Manifests[0], &manifest)
		var config ocispec.Image
		fetchJSON(manifest.Config, &config)
		Expect(config.Config.User).To(Equal("65532:65532"))
		Expect(config.Config.Entrypoint).To(Equal([]string{"/manager"}))

		By("unpacking the layer as a runtime would, and running the fetcher from it")
		root := GinkgoT().TempDir()
		data, err := content.FetchAll(ctx, repo, manifest.Layers[0])
		Expect(err).NotTo(HaveOccurred())
		zr, err := gzip.NewReader(bytes.NewReader(data))
		Expect(err).NotTo(HaveOccurred())
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			Expect(err).NotTo(HaveOccurred())
			path := filepath.Join(root, h.Name)
			if h.Typeflag == tar.TypeDir {
				Expect(os.MkdirAll(path, 0o755)).To(Succeed())
				continue
			}
			body, err := io.ReadAll(tr)
			Expect(err).NotTo(HaveOccurred())
			Expect(os.WriteFile(path, body, os.FileMode(h.Mode))).To(Succeed())
		}
		Expect(filepath.Join(root, "bin", "sh")).NotTo(BeAnExistingFile(), "no shell")
		fetch := exec.CommandContext(ctx, filepath.Join(root, "manager"), "fetch", "--help")
		fetch.Env = []string{"SSL_CERT_FILE=" + filepath.Join(root, "etc", "ssl", "certs", "ca-certificates.crt")}
		out, err = fetch.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("Downloads the model bundle at URI into DIR"))
	})
})
