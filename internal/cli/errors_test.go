package cli

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var _ = Describe("errors a person can act on", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		create(ctx, seedModel(ns), seedVersion(ns, 2, "0.8203"), seedVersion(ns, 3, "0.8512"))
	})

	DescribeTable("an unknown model",
		func(ctx context.Context, args ...string) {
			r := podium(ctx, ns, args...)
			Expect(r.err).To(MatchError(fmt.Sprintf(
				"RegisteredModel nope not found in namespace %s; list them with kubectl get registeredmodels -n %s", ns, ns)))
		},
		Entry("register", "register", "nope", "--uri", "s3://b/1/"),
		Entry("compare", "compare", "nope"),
		Entry("promote", "promote", "nope", "1"),
		Entry("rollback", "rollback", "nope"),
		Entry("history", "history", "nope"),
		Entry("status", "status", "nope"),
	)

	DescribeTable("an unknown version",
		func(ctx context.Context, message string, args ...string) {
			r := podium(ctx, ns, args...)
			Expect(r.err).To(MatchError(fmt.Sprintf(message, ns)))
		},
		Entry("by number", "version 9 of RegisteredModel battle-winner-predictor not found in namespace %[1]s; "+
			"list its versions with kubectl podium compare battle-winner-predictor -n %[1]s",
			"promote", seed, "9"),
		Entry("to roll back to", "version 9 of RegisteredModel battle-winner-predictor not found in namespace %[1]s; "+
			"list its versions with kubectl podium compare battle-winner-predictor -n %[1]s",
			"rollback", seed, "--to", "9"),
		Entry("by name", "ModelVersion battle-winner-predictor-9 not found in namespace %[1]s; "+
			"list the versions of battle-winner-predictor with kubectl podium compare battle-winner-predictor -n %[1]s",
			"promote", seed, seed+"-9"),
	)

	It("refuses a version of another model, and writes nothing", func(ctx context.Context) {
		other := seedVersion(ns, 1, "0.9")
		other.Name, other.Spec.RegisteredModel = "other-model-1", "other-model"
		create(ctx, other)
		r := podium(ctx, ns, "promote", seed, "other-model-1")
		Expect(r.err).To(MatchError("ModelVersion other-model-1 is version 1 of RegisteredModel other-model, " +
			"not of battle-winner-predictor; name a version of battle-winner-predictor"))
		Expect(getVersion(ctx, ns, "other-model-1").Spec.Stage).To(BeEmpty())
	})

	It("refuses a version number two ModelVersions claim", func(ctx context.Context) {
		twin := seedVersion(ns, 3, "0.9")
		twin.Name = seed + "-3b"
		create(ctx, twin)
		r := podium(ctx, ns, "promote", seed, "3")
		Expect(r.err).To(MatchError("version 3 of RegisteredModel battle-winner-predictor is claimed by several ModelVersions " +
			"(battle-winner-predictor-3, battle-winner-predictor-3b); delete all but one of them"))
	})

	It("cannot roll back a model that never had another Production version", func(ctx context.Context) {
		r := podium(ctx, ns, "rollback", seed)
		Expect(r.err).To(MatchError("RegisteredModel battle-winner-predictor has had no other Production version; " +
			"name the version to roll back to with --to VERSION"))
	})
})

var _ = Describe("on a cluster without Podium's CRDs", Ordered, func() {
	var (
		bare           *envtest.Environment
		bareKubeconfig string
	)
	BeforeAll(func() {
		bare = &envtest.Environment{}
		_, err := bare.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(bare.Stop()).To(Succeed()) })
		bareKubeconfig = writeKubeconfig(bare)
	})

	DescribeTable("every command says Podium is not installed",
		func(ctx context.Context, args ...string) {
			r := podiumWith(ctx, bareKubeconfig, "default", args...)
			Expect(r.err).To(MatchError(errNotInstalled))
			Expect(r.err.Error()).To(HavePrefix(
				"Podium is not installed in this cluster: the ml.podium.dev CRDs are missing; install them with "))
		},
		Entry("register", "register", seed, "--uri", "s3://b/1/"),
		Entry("compare", "compare", seed),
		Entry("promote", "promote", seed, "1"),
		Entry("rollback", "rollback", seed),
		Entry("history", "history", seed),
		Entry("status", "status", seed),
	)

	It("says so too to a client that still maps the CRDs' kinds, which gets a 404 on their path", func(ctx context.Context) {
		mapper := meta.NewDefaultRESTMapper(nil)
		mapper.Add(mlv1.GroupVersion.WithKind("RegisteredModel"), meta.RESTScopeNamespace)
		c, err := client.New(bare.Config, client.Options{Scheme: scheme, Mapper: mapper})
		Expect(err).NotTo(HaveOccurred())
		_, err = (&cluster{client: c, namespace: metav1.NamespaceDefault}).model(ctx, seed)
		Expect(err).To(MatchError(errNotInstalled))
	})
})
