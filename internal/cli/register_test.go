package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"sigs.k8s.io/yaml"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var _ = Describe("register", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		create(ctx, seedModel(ns))
	})

	It("creates <model>-<n> with the next free number and everything the flags say", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8203"), seedVersion(ns, 5, "0.86"))
		out := succeed(ctx, ns, "register", seed, "--uri", "s3://ml-artifacts/battle-winner/6/",
			"--metric", "test_accuracy=0.8723", "--metric", "overfitting=0.0233",
			"--param", "n_estimators=200", "--param", "criterion=gini",
			"--description", "RandomForest - Accuracy: 0.8723",
			"--digest", "sha256:"+strings64("a"), "--run-id", "run-6", "--experiment", "battle_winner_v6")
		Expect(out).To(Equal(fmt.Sprintf("Registered version 6 of %s as ModelVersion %s-6 in namespace %s\n", seed, seed, ns)))

		v := getVersion(ctx, ns, seed+"-6")
		Expect(v.Spec).To(Equal(mlv1.ModelVersionSpec{
			RegisteredModel: seed,
			Version:         6,
			Description:     "RandomForest - Accuracy: 0.8723",
			Artifact:        mlv1.Artifact{URI: "s3://ml-artifacts/battle-winner/6/", Digest: "sha256:" + strings64("a")},
			Metrics:         map[string]mlv1.Number{"test_accuracy": "0.8723", "overfitting": "0.0233"},
			Params:          map[string]string{"n_estimators": "200", "criterion": "gini"},
			Source:          &mlv1.Source{RunID: "run-6", Experiment: "battle_winner_v6"},
		}))
	})

	It("gives concurrent registrations distinct consecutive numbers and overwrites none", func(ctx context.Context) {
		const n = 8
		start := make(chan struct{})
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				defer GinkgoRecover()
				<-start
				results[i] = podium(ctx, ns, "register", seed, "--uri", fmt.Sprintf("s3://ml-artifacts/run-%d/", i),
					"--metric", "test_accuracy=0.9", "--run-id", fmt.Sprintf("run-%d", i))
			})
		}
		close(start)
		wg.Wait()

		// Each registration reports its number; the cluster holds each run under the number it reported.
		reported := regexp.MustCompile(`^Registered version (\d+) of `)
		runOf := map[int64]string{}
		for i, r := range results {
			Expect(r.err).NotTo(HaveOccurred(), "registration %d", i)
			m := reported.FindStringSubmatch(r.stdout)
			Expect(m).NotTo(BeNil(), "registration %d printed %q", i, r.stdout)
			version, _ := strconv.ParseInt(m[1], 10, 64)
			Expect(runOf).NotTo(HaveKey(version), "two registrations reported version %d", version)
			runOf[version] = fmt.Sprintf("run-%d", i)
		}
		versions := listVersions(ctx, ns)
		Expect(versions).To(HaveLen(n))
		for _, v := range versions {
			Expect(v.Name).To(Equal(versionName(seed, v.Spec.Version)))
			Expect(v.Spec.Source.RunID).To(Equal(runOf[v.Spec.Version]), "version %d was overwritten", v.Spec.Version)
			Expect(v.Spec.Artifact.URI).To(Equal(fmt.Sprintf("s3://ml-artifacts/%s/", v.Spec.Source.RunID)))
		}
		Expect(runOf).To(HaveLen(n))
		for version := int64(1); version <= n; version++ {
			Expect(runOf).To(HaveKey(version))
		}
	})

	It("reads the metrics a training script wrote, and --metric overrides them", func(ctx context.Context) {
		file := filepath.Join(GinkgoT().TempDir(), "metrics.json")
		Expect(os.WriteFile(file, []byte(`{"test_accuracy": 0.8723, "overfitting": 0.0233, "epochs": 10}`), 0o600)).To(Succeed())
		succeed(ctx, ns, "register", seed, "--uri", "s3://b/1/", "--metrics-file", file, "--metric", "overfitting=0.02")
		Expect(getVersion(ctx, ns, seed+"-1").Spec.Metrics).To(Equal(map[string]mlv1.Number{
			"test_accuracy": "0.8723", "overfitting": "0.02", "epochs": "10",
		}))
	})

	DescribeTable("rejects metrics that are not numbers, and creates nothing",
		func(ctx context.Context, metricsFile string, args []string, message string) {
			if metricsFile != "" {
				file := filepath.Join(GinkgoT().TempDir(), "metrics.json")
				Expect(os.WriteFile(file, []byte(metricsFile), 0o600)).To(Succeed())
				args = append(args, "--metrics-file", file)
			}
			r := podium(ctx, ns, append([]string{"register", seed, "--uri", "s3://b/1/"}, args...)...)
			Expect(r.err).To(MatchError(ContainSubstring(message)))
			Expect(listVersions(ctx, ns)).To(BeEmpty())
		},
		Entry("a word", "", []string{"--metric", "test_accuracy=high"},
			`--metric test_accuracy=high: "high" is not a number; metric values are plain numbers, such as test_accuracy=0.8723`),
		Entry("a number with a unit", "", []string{"--metric", "latency=12ms"}, `"12ms" is not a number`),
		Entry("no value", "", []string{"--metric", "test_accuracy"},
			"--metric test_accuracy: want NAME=VALUE, such as --metric test_accuracy=0.8723"),
		Entry("a string in the file", `{"test_accuracy": "0.87"}`, nil,
			`metric test_accuracy is "0.87", not a number; the file holds a flat object of numbers`),
		Entry("a nested object in the file", `{"test": {"accuracy": 0.87}}`, nil, `metric test is {"accuracy":0.87}, not a number`),
		Entry("NaN in the file, as Python writes it", `{"test_accuracy": NaN}`, nil, "is not a JSON object of numbers"),
	)

	It("refuses a --version that is taken", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 3, "0.8512"))
		r := podium(ctx, ns, "register", seed, "--uri", "s3://b/3/", "--version", "3")
		Expect(r.err).To(MatchError(fmt.Sprintf(
			"version 3 of %s already exists (ModelVersion %s-3); omit --version to take the next free number", seed, seed)))
		Expect(getVersion(ctx, ns, seed+"-3").Spec.Artifact.URI).To(Equal("s3://ml-artifacts/battle-winner/3/"))
	})

	It("prints the manifest with --dry-run=client, metrics as plain numbers, and creates nothing", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8203"))
		out := succeed(ctx, ns, "register", seed, "--uri", "s3://b/3/", "--metric", "test_accuracy=0.8723",
			"--dry-run=client", "-o", "yaml")
		Expect(out).To(ContainSubstring("    test_accuracy: 0.8723\n"))
		var mv mlv1.ModelVersion
		Expect(yaml.UnmarshalStrict([]byte(out), &mv)).To(Succeed())
		Expect(mv.APIVersion).To(Equal("ml.podium.dev/v1alpha1"))
		Expect(mv.Kind).To(Equal("ModelVersion"))
		Expect(mv.Name).To(Equal(seed + "-3"))
		Expect(mv.Namespace).To(Equal(ns))
		Expect(mv.Spec.Version).To(BeEquivalentTo(3))
		Expect(mv.Spec.Metrics).To(Equal(map[string]mlv1.Number{"test_accuracy": "0.8723"}))
		Expect(listVersions(ctx, ns)).To(HaveLen(1))
	})

	It("prints the manifest of a given --version without contacting the cluster", func(ctx context.Context) {
		out := succeed(ctx, ns, "register", seed, "--uri", "s3://b/7/", "--metric", "test_accuracy=0.9",
			"--version", "7", "--dry-run=client", "--server", "https://127.0.0.1:1")
		Expect(out).To(ContainSubstring("name: " + seed + "-7\n"))
		Expect(out).To(ContainSubstring("  version: 7\n"))
	})
})

// strings64 repeats s to 64 characters, for a digest.
func strings64(s string) string {
	out := ""
	for len(out) < 64 {
		out += s
	}
	return out[:64]
}
