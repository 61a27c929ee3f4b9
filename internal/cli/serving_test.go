package cli

import (
	"context"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

const deployment = seed + "-predictor"

// envtest runs no Deployment controller: these specs play its part and report a Deployment
// rolled out, the way kube-controller-manager does, so the operator reports what serves.
var _ = Describe("a served model", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		seedStory(ctx, ns)
		patchModel(ctx, ns, `{"spec":{"serving":{"replicas":2,"template":{"spec":{"containers":[
			{"name":"predictor","image":"registry.example.com/battle-api:1.4","ports":[{"containerPort":8000}]}]}}}}}`)
		rollOut(ctx, ns, "4")
	})

	It("promote waits until the model serves the version", func(ctx context.Context) {
		done := make(chan result, 1)
		go func() {
			defer GinkgoRecover()
			done <- podium(ctx, ns, "promote", seed, "3", "--timeout", "30s")
		}()
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production 4=Archived"))
		Consistently(done).ShouldNot(Receive(), "promote returned before the model served version 3")

		rollOut(ctx, ns, "3")
		var r result
		Eventually(done).Should(Receive(&r))
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.stdout).To(Equal("Version 3 of battle-winner-predictor is Production\n"))
		Expect(r.stderr).To(ContainSubstring("  Production version 3; battle-winner-predictor-3 is Production; serving no version\n"))
		Expect(r.stderr).To(HaveSuffix("  Production version 3; battle-winner-predictor-3 is Production; serving version 3\n"))
	})

	It("status shows what serves", func(ctx context.Context) {
		Expect(succeed(ctx, ns, "status", seed)).To(ContainSubstring(
			"Serving:       version 4, 2 ready replicas (Deployment " + deployment + ", Service " + deployment + ")\n"))
	})
})

// rollOut waits until the operator has rendered the prediction Deployment for version, then
// reports it rolled out, and waits until the operator says the version serves.
func rollOut(ctx context.Context, ns, version string) {
	GinkgoHelper()
	d := &appsv1.Deployment{}
	Eventually(func(g Gomega) string {
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: deployment}, d)).To(Succeed())
		return d.Spec.Template.Annotations["ml.podium.dev/version"]
	}).Should(Equal(version))
	base := d.DeepCopy()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: *d.Spec.Replicas, UpdatedReplicas: *d.Spec.Replicas,
		ReadyReplicas: *d.Spec.Replicas, AvailableReplicas: *d.Spec.Replicas,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "MinimumReplicasAvailable"}},
	}
	Expect(k8sClient.Status().Patch(ctx, d, client.MergeFrom(base))).To(Succeed())
	Eventually(func(g Gomega) *int64 {
		m := &mlv1.RegisteredModel{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: seed}, m)).To(Succeed())
		g.Expect(m.Status.Serving).NotTo(BeNil())
		return m.Status.Serving.Version
	}).Should(HaveValue(WithTransform(func(v int64) string { return strconv.FormatInt(v, 10) }, Equal(version))))
}

// patchModel patches the seed model's spec with a JSON merge patch.
func patchModel(ctx context.Context, ns, patch string) {
	GinkgoHelper()
	m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: seed}}
	Expect(k8sClient.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}
