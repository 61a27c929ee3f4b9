package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/podium-dev/podium/internal/bundle"
	"github.com/podium-dev/podium/internal/testregistry"
)

var _ = Describe("push to an OCI registry", func() {
	var ns, dir, digest string
	var reg *testregistry.Registry
	BeforeEach(func(ctx context.Context) {
		reg = testregistry.Start(GinkgoT(), testregistry.Options{})
		ns = newNamespace(ctx)
		create(ctx, seedModel(ns))
		dir = GinkgoT().TempDir()
		Expect(writeFiles(dir, map[string]string{"model.pkl": "weights", "meta/metadata.pkl": "meta"})).To(Succeed())
		var err error
		digest, err = bundle.Digest(dir)
		Expect(err).NotTo(HaveOccurred())
	})

	// fetched pulls uri with the fetcher and returns the digest of what it unpacked.
	fetched := func(ctx context.Context, uri string) string {
		GinkgoHelper()
		dest := filepath.Join(GinkgoT().TempDir(), "model")
		Expect(bundle.Fetch(ctx, uri, dest, bundle.Options{OCI: bundle.OCIOptions{InsecureRegistry: reg.Host}})).To(Succeed())
		got, err := bundle.Digest(dest)
		Expect(err).NotTo(HaveOccurred())
		return got
	}

	It("prints the pinned reference, which the fetcher pulls, and digest resolves the tag to it", func(ctx context.Context) {
		pinned := strings.TrimSpace(succeed(ctx, ns, "push", dir, "oci://"+reg.Host+"/ml/battle-winner:v4", "--plain-http"))
		Expect(pinned).To(MatchRegexp(`^oci://` + reg.Host + `/ml/battle-winner@sha256:[0-9a-f]{64}$`))
		Expect(fetched(ctx, pinned)).To(Equal(digest))

		resolved := strings.TrimSpace(succeed(ctx, ns, "digest", "oci://"+reg.Host+"/ml/battle-winner:v4", "--plain-http"))
		Expect(pinned).To(HaveSuffix("@" + resolved))
	})

	It("pushes the same files to the same digest, and records a time only with --created", func(ctx context.Context) {
		target := "oci://" + reg.Host + "/ml/same"
		first := strings.TrimSpace(succeed(ctx, ns, "push", dir, target, "--plain-http"))
		Expect(strings.TrimSpace(succeed(ctx, ns, "push", dir, target+":again", "--plain-http"))).To(Equal(first))
		dated := strings.TrimSpace(succeed(ctx, ns, "push", dir, target, "--plain-http", "--created", "2026-12-07T10:00:00Z"))
		Expect(dated).NotTo(Equal(first))
		Expect(fetched(ctx, dated)).To(Equal(digest))
		r := podium(ctx, ns, "push", dir, target, "--plain-http", "--created", "yesterday")
		Expect(r.err).To(MatchError(ContainSubstring(`--created "yesterday": write an RFC 3339 time`)))
	})

	It("registers a version with --push: the pinned reference and the bundle's digest", func(ctx context.Context) {
		out := succeed(ctx, ns, "register", seed, "--push", dir, "--to", "oci://"+reg.Host+"/ml/battle-winner",
			"--plain-http", "--metric", "test_accuracy=0.87")
		Expect(out).To(ContainSubstring("Registered version 1 of " + seed))
		v := getVersion(ctx, ns, seed+"-1")
		Expect(v.Spec.Artifact.URI).To(HavePrefix("oci://" + reg.Host + "/ml/battle-winner@sha256:"))
		Expect(v.Spec.Artifact.Digest).To(Equal(digest))
		Expect(fetched(ctx, v.Spec.Artifact.URI)).To(Equal(digest))
	})

	It("refuses --push with a dry run, and a target that is not a repository", func(ctx context.Context) {
		r := podium(ctx, ns, "register", seed, "--push", dir, "--to", "oci://"+reg.Host+"/ml/b", "--dry-run=client")
		Expect(r.err).To(MatchError(ContainSubstring("--push uploads the bundle, which a dry run must not do")))
		r = podium(ctx, ns, "push", dir, "oci://"+reg.Host+"/ML/B", "--plain-http")
		Expect(r.err).To(MatchError(ContainSubstring("write the target as oci://REGISTRY[:PORT]/REPOSITORY[:TAG]")))
	})
})

// writeFiles writes files, by slash-separated path, below dir.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
