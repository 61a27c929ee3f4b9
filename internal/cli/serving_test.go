package cli

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// The serving fields come with a later API change (see serving.go). These specs stand in for it:
// they let the RegisteredModel CRD keep unknown spec and status fields, and write status.serving
// as the serving controller will.
var _ = Describe("a served model", Serial, func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		keepUnknownModelFields(ctx)
		ns = newNamespace(ctx)
		seedStory(ctx, ns)
		patchModel(ctx, ns, `{"spec":{"serving":{"replicas":2}}}`)
		patchModelStatus(ctx, ns,
			`{"status":{"serving":{"deploymentName":"bwp-predictor","serviceName":"bwp","version":4,"readyReplicas":2}}}`)
	})

	It("promote waits until the model serves the version", func(ctx context.Context) {
		done := make(chan result, 1)
		go func() {
			defer GinkgoRecover()
			done <- podium(ctx, ns, "promote", seed, "3", "--timeout", "30s")
		}()
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production 4=Archived"))
		Consistently(done).ShouldNot(Receive(), "promote returned before the model served version 3")

		patchModelStatus(ctx, ns, `{"status":{"serving":{"version":3}}}`)
		var r result
		Eventually(done).Should(Receive(&r))
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.stdout).To(Equal("Version 3 of battle-winner-predictor is Production\n"))
		Expect(r.stderr).To(ContainSubstring("  Production version 3; battle-winner-predictor-3 is Production; serving version 4\n"))
		Expect(r.stderr).To(HaveSuffix("  Production version 3; battle-winner-predictor-3 is Production; serving version 3\n"))
	})

	It("status shows what serves", func(ctx context.Context) {
		Expect(succeed(ctx, ns, "status", seed)).To(ContainSubstring(
			"Serving:       version 4, 2 ready replicas (Deployment bwp-predictor, Service bwp)\n"))
	})
})

// keepUnknownModelFields lets the RegisteredModel CRD keep fields its schema does not define, in
// spec and status, until the spec ends.
func keepUnknownModelFields(ctx context.Context) {
	GinkgoHelper()
	const name = "registeredmodels.ml.podium.dev"
	setPreserve := func(ctx context.Context, preserve *bool) {
		Eventually(func() error {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
				return err
			}
			props := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties
			for _, field := range []string{"spec", "status"} {
				p := props[field]
				p.XPreserveUnknownFields = preserve
				props[field] = p
			}
			return k8sClient.Update(ctx, crd)
		}).Should(Succeed())
	}
	setPreserve(ctx, new(true))
	DeferCleanup(func(ctx context.Context) { setPreserve(ctx, nil) })

	// The API server serves the new schema a moment after the update.
	probe := seedModel(newNamespace(ctx))
	create(ctx, probe)
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Patch(ctx, probe, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"probe":1}}`)))).To(Succeed())
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(mlv1.GroupVersion.WithKind("RegisteredModel"))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(probe), u)).To(Succeed())
		g.Expect(u.Object["spec"]).To(HaveKey("probe"))
	}).Should(Succeed())
}

// patchModel patches the seed model with a JSON merge patch.
func patchModel(ctx context.Context, ns, patch string) {
	GinkgoHelper()
	m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: seed}}
	Expect(k8sClient.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

// patchModelStatus patches the seed model's status with a JSON merge patch.
func patchModelStatus(ctx context.Context, ns, patch string) {
	GinkgoHelper()
	m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: seed}}
	Expect(k8sClient.Status().Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}
