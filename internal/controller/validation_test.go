package controller_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/bundle"
)

// These specs prove that bad input is refused at apply time by the real API server, with a
// message that says what to do.
var _ = Describe("Validation at apply time", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	DescribeTable("a ModelVersion is rejected",
		func(ctx context.Context, mutate func(*mlv1.ModelVersion), message string) {
			v := seedVersion(ns, 1, "0.9")
			mutate(v)
			err := k8sClient.Create(ctx, v)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("when version is 0", func(v *mlv1.ModelVersion) { v.Spec.Version = 0 },
			"spec.version: Invalid value: 0: spec.version in body should be greater than or equal to 1"),
		Entry("when version is above 2^53-1, beyond what JSON clients read exactly", func(v *mlv1.ModelVersion) { v.Spec.Version = 1 << 53 },
			"spec.version in body should be less than or equal to 9007199254740991"),
		Entry("when the URI scheme is not supported", func(v *mlv1.ModelVersion) { v.Spec.Artifact.URI = "ftp://host/model" },
			"artifact.uri must start with one of s3://, gs://, azblob://, http://, https://, file://, pvc://"),
		Entry("when the URI is empty", func(v *mlv1.ModelVersion) { v.Spec.Artifact.URI = "" },
			"spec.artifact.uri"),
		Entry("when the digest is not sha256", func(v *mlv1.ModelVersion) { v.Spec.Artifact.Digest = "md5:abc" },
			"artifact.digest must be sha256: followed by 64 lowercase hex digits"),
		Entry("when the stage request is unknown", func(v *mlv1.ModelVersion) { v.Spec.Stage = "Live" },
			`supported values: "None", "Staging", "Production", "Archived"`),
		Entry("when a metric name has a space", func(v *mlv1.ModelVersion) { v.Spec.Metrics["test accuracy"] = "1" },
			"metric names start with a letter or '_'"),
		Entry("when the model name is empty", func(v *mlv1.ModelVersion) { v.Spec.RegisteredModel = "" },
			"spec.registeredModel"),
		Entry("when the model is named with its namespace", func(v *mlv1.ModelVersion) { v.Spec.RegisteredModel = "gov/churn" },
			"registeredModel must be the name of a RegisteredModel in the version's namespace"),
		Entry("when the model name could never name a RegisteredModel", func(v *mlv1.ModelVersion) { v.Spec.RegisteredModel = "Churn" },
			"registeredModel must be the name of a RegisteredModel"),
	)

	It("keeps metric values exactly as written", func(ctx context.Context) {
		v := seedVersion(ns, 1, "0.8723")
		v.Spec.Metrics["n"] = "200"
		create(ctx, v)
		got := getVersion(ctx, ns, v.Name)
		Expect(got.Spec.Metrics).To(HaveKeyWithValue("test_accuracy", mlv1.Number("0.8723")))
		Expect(got.Spec.Metrics).To(HaveKeyWithValue("n", mlv1.Number("200")))
	})

	It("refuses a metric written as a string", func(ctx context.Context) {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "ml.podium.dev/v1alpha1", "kind": "ModelVersion",
			"metadata": map[string]any{"name": "s", "namespace": ns},
			"spec": map[string]any{"registeredModel": "m", "version": int64(1),
				"artifact": map[string]any{"uri": "s3://b/k/"}, "metrics": map[string]any{"acc": "0.9"}},
		}}
		err := k8sClient.Create(ctx, u)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`spec.metrics.acc: Invalid value: "string": spec.metrics.acc in body must be of type number`))
	})

	DescribeTable("a ModelVersion's identity cannot change",
		func(ctx context.Context, mutate func(*mlv1.ModelVersion), message string) {
			v := seedVersion(ns, 1, "0.9")
			create(ctx, v)
			patch := client.MergeFrom(v.DeepCopy()) // no resourceVersion: the operator may write status meanwhile
			mutate(v)
			err := k8sClient.Patch(ctx, v, patch)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("version", func(v *mlv1.ModelVersion) { v.Spec.Version = 2 }, "version cannot be changed"),
		Entry("registeredModel", func(v *mlv1.ModelVersion) { v.Spec.RegisteredModel = "other" }, "registeredModel cannot be changed"),
		Entry("artifact", func(v *mlv1.ModelVersion) { v.Spec.Artifact.URI = "s3://elsewhere/" }, "artifact cannot be changed"),
	)

	DescribeTable("a RegisteredModel is rejected",
		func(ctx context.Context, mutate func(*mlv1.RegisteredModel), message string) {
			m := seedModel(ns)
			mutate(m)
			err := k8sClient.Create(ctx, m)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("when a gate has neither min nor max", func(m *mlv1.RegisteredModel) {
			m.Spec.Promotion.Gates = []mlv1.Gate{{Metric: "test_accuracy"}}
		}, "a gate needs min, max or both"),
		Entry("when a gate's min is above its max", func(m *mlv1.RegisteredModel) {
			m.Spec.Promotion.Gates = []mlv1.Gate{{Metric: "a", Min: numPtr("2"), Max: numPtr("1")}}
		}, "a gate's min must not be greater than its max"),
		Entry("when two gates name the same metric", func(m *mlv1.RegisteredModel) {
			m.Spec.Promotion.Gates = append(m.Spec.Promotion.Gates, mlv1.Gate{Metric: "test_accuracy", Max: numPtr("1")})
		}, "Duplicate value"),
		Entry("when the mode is unknown", func(m *mlv1.RegisteredModel) { m.Spec.Promotion.Mode = "Sometimes" },
			`supported values: "Automatic", "Manual"`),
		Entry("when the name is too long for the objects derived from it", func(m *mlv1.RegisteredModel) {
			m.Name = "a-model-name-that-is-much-too-long-for-its-deployment"
		}, "at most 45 characters"),
		Entry("when the name starts with a digit", func(m *mlv1.RegisteredModel) { m.Name = "1model" },
			"must start with a lowercase letter"),
		Entry("when the history limit is 0", func(m *mlv1.RegisteredModel) { m.Spec.HistoryLimit = new(int32(0)) },
			"spec.historyLimit: Invalid value: 0: spec.historyLimit in body should be greater than or equal to 1"),
		Entry("when the history limit is above 500, which could outgrow etcd's limit on an object", func(m *mlv1.RegisteredModel) {
			m.Spec.HistoryLimit = new(int32(501))
		}, "spec.historyLimit: Invalid value: 501: spec.historyLimit in body should be less than or equal to 500"),
		Entry("when a shadow has no Gateway API to mirror requests", func(m *mlv1.RegisteredModel) {
			gatewayCanary(m)
			m.Spec.Serving.Rollout.Traffic = nil
		}, "shadow mirrors requests to the candidate, which needs a data plane that copies requests: set spec.serving.rollout.traffic.gatewayAPI"),
		Entry("when a shadow is not the first phase of a canary", func(m *mlv1.RegisteredModel) {
			gatewayCanary(m)
			m.Spec.Serving.Rollout.Strategy, m.Spec.Serving.Rollout.Steps = mlv1.RolloutReplace, nil
		}, "shadow is the first phase of a canary: it needs strategy: Canary"),
		Entry("when a shadow copies no request", func(m *mlv1.RegisteredModel) {
			gatewayCanary(m)
			m.Spec.Serving.Rollout.Shadow.Percent = 0
		}, "spec.serving.rollout.shadow.percent in body should be greater than or equal to 1"),
		Entry("when the route has no parent", func(m *mlv1.RegisteredModel) {
			gatewayCanary(m)
			m.Spec.Serving.Rollout.Traffic.GatewayAPI.ParentRefs = nil
		}, "spec.serving.rollout.traffic.gatewayAPI.parentRefs"),
		Entry("when a host name is not one", func(m *mlv1.RegisteredModel) {
			gatewayCanary(m)
			m.Spec.Serving.Rollout.Traffic.GatewayAPI.Hostnames = []string{"https://battle.example.com"}
		}, "spec.serving.rollout.traffic.gatewayAPI.hostnames[0] in body should match"),
		Entry("when a parent's port is out of range", func(m *mlv1.RegisteredModel) {
			gatewayCanary(m)
			m.Spec.Serving.Rollout.Traffic.GatewayAPI.ParentRefs[0].Port = new(int32(70000))
		}, "spec.serving.rollout.traffic.gatewayAPI.parentRefs[0].port in body should be less than or equal to 65535"),
	)

	It("accepts the Gateway API contract: parents, host names and a shadow", func(ctx context.Context) {
		m := seedModel(ns, gatewayCanary, func(m *mlv1.RegisteredModel) {
			m.Spec.Serving.Rollout.Traffic.GatewayAPI.ParentRefs[0].SectionName = "https"
			m.Spec.Serving.Rollout.Traffic.GatewayAPI.ParentRefs[0].Port = new(int32(443))
			m.Spec.Serving.Rollout.Traffic.GatewayAPI.Hostnames = append(m.Spec.Serving.Rollout.Traffic.GatewayAPI.Hostnames, "*.example.com")
		})
		Expect(k8sClient.Create(ctx, m)).To(Succeed())
	})

	It("defaults the history limit to 100, and keeps a limit of 1 or 500", func(ctx context.Context) {
		create(ctx, seedModel(ns))
		Expect(getModel(ctx, ns, "battle-winner-predictor").Spec.HistoryLimit).To(HaveValue(BeEquivalentTo(mlv1.DefaultHistoryLimit)))
		for _, limit := range []int32{1, mlv1.MaxHistoryLimit} {
			m := seedModel(ns, func(m *mlv1.RegisteredModel) {
				m.Name = fmt.Sprintf("limit-%d", limit)
				m.Spec.HistoryLimit = new(limit)
			})
			create(ctx, m)
			Expect(getModel(ctx, ns, m.Name).Spec.HistoryLimit).To(HaveValue(Equal(limit)))
		}
	})

	It("defaults the promotion mode to Automatic", func(ctx context.Context) {
		m := seedModel(ns)
		m.Spec.Promotion.Mode = ""
		create(ctx, m)
		Expect(getModel(ctx, ns, m.Name).Spec.Promotion.Mode).To(Equal(mlv1.PromotionAutomatic))
	})
})

// The CRD's rules for spec.artifact.uri are the fetcher's parser written as CEL. This spec holds
// them together: every URI here is accepted by the API server exactly when bundle.ParseURI
// accepts it, so a URI that reaches the fetcher never fails to parse there.
var _ = Describe("artifact.uri at apply time and in the fetcher", func() {
	pin := "sha256:" + strings.Repeat("ab", 32)
	uris := []string{
		"s3://ml-artifacts/battle-winner/4/", "s3://bucket", "s3://bucket/", "gs://b/p/q", "azblob://container/prefix/",
		"pvc://claim/models/4", "pvc://claim", "file:///srv/models/4/", "file://localhost/srv/models/4",
		"https://models.example.com/battle-winner/4.tar.gz", "http://models.example.com:8080/b/4.tgz",
		"https://user:pass@models.example.com/b.tar", "https://models.example.com/b.TAR.GZ?sig=abc#x",
		"https://[::1]:8443/b.tgz",
		// passes the old pattern, fails the parser
		"https://host/model.zip", "s3://b/x?versionId=1", "file://relative", "file://relative/path",
		"s3://key:secret@bucket/", "gs:///no-bucket", "pvc:///no-claim", "s3://b/p#frag", "azblob://c/p?x",
		"https://host.tar", "https://host:port/b.tgz", "http://host/%zz.tgz", "s3://b/a%2", "S3://bucket/",
		"https://", "s3://b/p\x01", "ftp://host/b.tgz", "https://host/dir/",
		// oci: pinned by digest, a tag alone is refused
		"oci://127.0.0.1:5000/ml/battle-winner@" + pin, "oci://registry.example.com/ml/battle-winner:v4@" + pin,
		"oci://[::1]:5000/a/b/c@" + pin, "oci://ghcr.io/org/model_v2.x__y--z@" + pin,
		"oci://registry.example.com/ml/battle-winner:v4", "oci://registry.example.com/ml/battle-winner",
		"oci://registry.example.com/ML/Battle@" + pin, "oci://registry.example.com/@" + pin, "oci://registry.example.com@" + pin,
		"oci://user:pw@registry.example.com/ml/b@" + pin, "oci://registry.example.com/ml/b@sha256:ABC",
		"oci://registry.example.com/ml/b@" + pin + "?x=1", "OCI://registry.example.com/ml/b@" + pin,
		"oci://-bad.example.com/ml/b@" + pin, "oci://registry.example.com/ml/b:-tag@" + pin, "oci://host:port/ml/b@" + pin,
	}
	It("accepts a URI at apply time exactly when the fetcher's parser does", func(ctx context.Context) {
		ns := newNamespace(ctx)
		for i, uri := range uris {
			v := seedVersion(ns, int64(i+1), "0.9")
			v.Spec.RegisteredModel = "uri-check"
			v.Name = fmt.Sprintf("uri-%d", i)
			v.Spec.Artifact.URI = uri
			applyErr := k8sClient.Create(ctx, v, client.DryRunAll)
			_, parseErr := bundle.ParseURI(uri)
			Expect(applyErr == nil).To(Equal(parseErr == nil),
				"URI %q: the API server says %v, the parser says %v", uri, applyErr, parseErr)
		}
	})
	It("says how to pin an oci:// URI given by tag, and refuses the manifest digest as the bundle digest", func(ctx context.Context) {
		ns := newNamespace(ctx)
		v := seedVersion(ns, 1, "0.9")
		v.Spec.Artifact.URI = "oci://registry.example.com/ml/battle-winner:v4"
		err := k8sClient.Create(ctx, v, client.DryRunAll)
		Expect(err).To(MatchError(ContainSubstring("kubectl podium push prints the pinned reference")))

		v = seedVersion(ns, 1, "0.9")
		v.Spec.Artifact.URI = "oci://registry.example.com/ml/battle-winner@" + pin
		v.Spec.Artifact.Digest = pin
		err = k8sClient.Create(ctx, v, client.DryRunAll)
		Expect(err).To(MatchError(ContainSubstring("not the manifest digest that the oci:// URI already pins")))

		v.Spec.Artifact.Digest = "sha256:" + strings.Repeat("cd", 32) // the digest of the unpacked files
		Expect(k8sClient.Create(ctx, v, client.DryRunAll)).To(Succeed())
	})
})

// gatewayCanary gives the seed model the canary on the Gateway API, with a shadow phase.
func gatewayCanary(m *mlv1.RegisteredModel) {
	served(m)
	m.Spec.Serving.Replicas = new(int32(4))
	m.Spec.Serving.Rollout = &mlv1.Rollout{
		Strategy: mlv1.RolloutCanary,
		Steps: []mlv1.RolloutStep{
			{Weight: 10, Duration: metav1.Duration{Duration: 2 * time.Minute}},
			{Weight: 50, Duration: metav1.Duration{Duration: 5 * time.Minute}},
		},
		Shadow: &mlv1.Shadow{Percent: 100, Duration: metav1.Duration{Duration: 5 * time.Minute}},
		Traffic: &mlv1.Traffic{GatewayAPI: &mlv1.GatewayAPITraffic{
			ParentRefs: []mlv1.ParentReference{{Name: "public-gw", Namespace: "gateways"}},
			Hostnames:  []string{"battle.example.com"},
		}},
	}
}
