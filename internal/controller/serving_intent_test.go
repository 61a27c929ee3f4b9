package controller_test

import (
	"context"
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// patchModel applies a JSON merge patch to the seed model's spec, as kubectl patch does.
func patchModel(ctx context.Context, ns string, spec map[string]any) {
	GinkgoHelper()
	data, err := json.Marshal(map[string]any{"spec": spec})
	Expect(err).NotTo(HaveOccurred())
	m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "battle-winner-predictor"}}
	Expect(k8sClient.Patch(ctx, m, client.RawPatch(types.MergePatchType, data))).To(Succeed())
}

func stalledWith(ctx context.Context, ns, reason string) func(Gomega) {
	return func(g Gomega) {
		conds := getModel(ctx, ns, "battle-winner-predictor").Status.Conditions
		ready := meta.FindStatusCondition(conds, mlv1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(reason))
		g.Expect(meta.IsStatusConditionTrue(conds, mlv1.ConditionStalled)).To(BeTrue())
		g.Expect(meta.FindStatusCondition(conds, mlv1.ConditionReconciling)).To(BeNil())
	}
}

// These specs hold the prediction Deployment and Service to what spec.serving says, no more.
var _ = Describe("Serving follows its spec", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("removes from the Deployment a field removed from spec.serving", func(ctx context.Context) {
		create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) {
			m.Spec.Serving.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
		}), seedVersion(ns, 3, "0.8512"))
		Eventually(func() map[string]string {
			d := &appsv1.Deployment{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: predictor}, d); err != nil {
				return nil
			}
			return d.Spec.Template.Spec.NodeSelector
		}).Should(HaveKeyWithValue("disk", "ssd"))

		patchModel(ctx, ns, map[string]any{"serving": map[string]any{"template": map[string]any{"spec": map[string]any{"nodeSelector": nil}}}})
		Eventually(func() map[string]string { return getDeployment(ctx, ns).Spec.Template.Spec.NodeSelector }).Should(BeEmpty())
	})

	It("deletes the Deployment and Service when spec.serving is removed", func(ctx context.Context) {
		create(ctx, seedModel(ns, served), seedVersion(ns, 3, "0.8512"))
		key := types.NamespacedName{Namespace: ns, Name: predictor}
		Eventually(k8sClient.Get).WithArguments(ctx, key, &corev1.Service{}).Should(Succeed())
		Eventually(k8sClient.Get).WithArguments(ctx, key, &appsv1.Deployment{}).Should(Succeed())

		patchModel(ctx, ns, map[string]any{"serving": nil})
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &appsv1.Deployment{})) }).Should(BeTrue())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &corev1.Service{})) }).Should(BeTrue())
		Expect(getModel(ctx, ns, "battle-winner-predictor").Status.Serving).To(BeNil())
	})

	It("leaves the number of pods to an autoscaler when spec.serving.replicas is not set", func(ctx context.Context) {
		create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) { m.Spec.Serving.Replicas = nil }),
			seedVersion(ns, 3, "0.8512"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))

		By("scaling through the scale subresource, as a HorizontalPodAutoscaler does")
		scale := &autoscalingv1.Scale{}
		d := getDeployment(ctx, ns)
		Expect(k8sClient.SubResource("scale").Get(ctx, d, scale)).To(Succeed())
		scale.Spec.Replicas = 5
		Expect(k8sClient.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(scale))).To(Succeed())

		By("promoting a new version, which applies a new rendering")
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		Expect(*getDeployment(ctx, ns).Spec.Replicas).To(BeEquivalentTo(5))
		Consistently(func() int32 { return *getDeployment(ctx, ns).Spec.Replicas }).Should(BeEquivalentTo(5))
	})

	It("never takes over a Service it did not create", func(ctx context.Context) {
		theirs := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: predictor},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "legacy"},
				Ports: []corev1.ServicePort{{Port: 80}}},
		}
		create(ctx, theirs)
		create(ctx, seedModel(ns, served), seedVersion(ns, 3, "0.8512"))
		Eventually(stalledWith(ctx, ns, mlv1.ReasonServingNameTaken)).Should(Succeed())
		Expect(readyCondition(ctx, ns).Message).To(ContainSubstring("Service " + predictor + " exists and was not created by Podium"))

		Consistently(func(g Gomega) {
			svc := &corev1.Service{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(theirs), svc)).To(Succeed())
			g.Expect(svc.Spec.Selector).To(Equal(map[string]string{"app": "legacy"}))
			g.Expect(svc.OwnerReferences).To(BeEmpty())
		}).Should(Succeed())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(theirs), &appsv1.Deployment{}))).To(BeTrue())
	})

	It("reports a rendering the API server refuses, instead of rolling out forever", func(ctx context.Context) {
		// A container name that is not a DNS label passes the RegisteredModel's schema, which does
		// not repeat every rule of a Deployment, but not the API server's check of the Deployment.
		create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) { m.Spec.Serving.Template.Spec.Containers[0].Name = "Predictor" }),
			seedVersion(ns, 3, "0.8512"))
		Eventually(stalledWith(ctx, ns, mlv1.ReasonServingRejected)).Should(Succeed())
		Expect(readyCondition(ctx, ns).Message).To(ContainSubstring("a lowercase RFC 1123 label"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production")) // the version is written after the model
		Expect(templateVersion(ctx, ns)).To(BeEmpty())

		By("fixing the name, the rendering is applied")
		patchModel(ctx, ns, map[string]any{"serving": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "predictor", "image": "registry.example.com/battle-api:1.4",
				"ports": []any{map[string]any{"name": "http", "containerPort": 8000}}}}}}}})
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))
	})

	It("mounts an oci:// bundle as an image volume, and reports a bundle an image volume cannot mount", func(ctx context.Context) {
		const ref = "registry.example.com/ml/battle-winner@sha256:4d12aa0e1c5f0c6b5d0f9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c"
		imageVolume := func(m *mlv1.RegisteredModel) { m.Spec.Serving.BundleMount = mlv1.BundleMountImageVolume }
		create(ctx, seedModel(ns, served, imageVolume), seedVersion(ns, 3, "0.8512"))
		Eventually(stalledWith(ctx, ns, mlv1.ReasonInvalidServing)).Should(Succeed())
		Expect(readyCondition(ctx, ns).Message).To(And(ContainSubstring("mounts only oci:// bundles"),
			ContainSubstring("version 3's bundle is s3://")))
		Expect(templateVersion(ctx, ns)).To(BeEmpty())

		By("promoting a version in a registry, the API server accepts its image volume")
		create(ctx, seedVersion(ns, 4, "0.8723", func(v *mlv1.ModelVersion) { v.Spec.Artifact.URI = "oci://" + ref }))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		spec := getDeployment(ctx, ns).Spec.Template.Spec
		Expect(spec.InitContainers).To(BeEmpty())
		Expect(spec.Volumes).To(ContainElement(corev1.Volume{Name: "podium-model", VolumeSource: corev1.VolumeSource{
			Image: &corev1.ImageVolumeSource{Reference: ref, PullPolicy: corev1.PullIfNotPresent}}}))
		Expect(spec.Containers[0].VolumeMounts).To(ContainElement(
			corev1.VolumeMount{Name: "podium-model", MountPath: "/var/podium/model", ReadOnly: true}))
	})

	It("refuses at apply time an image volume with fetch off", func(ctx context.Context) {
		err := k8sClient.Create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) {
			m.Spec.Serving.BundleMount = mlv1.BundleMountImageVolume
			m.Spec.Serving.Fetch = new(false)
		}))
		Expect(err).To(MatchError(ContainSubstring("spec.serving.bundleMount ImageVolume mounts the bundle, so spec.serving.fetch cannot be false")))
	})

	DescribeTable("refuses at apply time a template whose Deployment or Service the API server would refuse",
		func(ctx context.Context, mutate func(*corev1.PodSpec), message string) {
			err := k8sClient.Create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) { mutate(&m.Spec.Serving.Template.Spec) }))
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("a first container without ports", func(s *corev1.PodSpec) { s.Containers[0].Ports = nil },
			"the first container of spec.serving.template needs a port"),
		Entry("a container without an image", func(s *corev1.PodSpec) { s.Containers[0].Image = "" },
			"every container of spec.serving.template needs an image"),
		Entry("a restartPolicy other than Always", func(s *corev1.PodSpec) { s.RestartPolicy = corev1.RestartPolicyNever },
			"restartPolicy must be Always"),
		Entry("a volume named like Podium's", func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "podium-model", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, "a volume named podium-model"),
		Entry("an init container named like Podium's", func(s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "podium-fetch", Image: "busybox"}}
		}, "a container named podium-fetch"),
	)
})
