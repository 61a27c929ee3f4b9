package controller_test

import (
	"context"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/serving"
)

const predictor = "battle-winner-predictor-predictor"

// served gives the seed model a prediction service of two replicas.
func served(m *mlv1.RegisteredModel) {
	m.Spec.Serving = &mlv1.Serving{
		Replicas: new(int32(2)),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "battles"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "predictor", Image: "registry.example.com/battle-api:1.4",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
				Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}},
			}}},
		},
	}
}

func getDeployment(ctx context.Context, ns string) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: predictor}, d)).To(Succeed())
	return d
}

// templateVersion is the version the prediction Deployment's template serves, "" without one.
func templateVersion(ctx context.Context, ns string) string {
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: predictor}, d); err != nil {
		return ""
	}
	return d.Spec.Template.Annotations[serving.AnnotationVersion]
}

// reportRollout plays kube-controller-manager's Deployment controller, which envtest does not
// run: it reports the current template rolled out, or its progress deadline exceeded.
func reportRollout(ctx context.Context, ns string, ok bool) {
	GinkgoHelper()
	d := getDeployment(ctx, ns)
	base := d.DeepCopy()
	n := *d.Spec.Replicas
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n,
		ReadyReplicas: n, AvailableReplicas: n}
	if !ok {
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = 0, 0
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing,
			Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
			LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	}
	Expect(k8sClient.Status().Patch(ctx, d, client.MergeFrom(base))).To(Succeed())
}

func servedVersion(ctx context.Context, ns string) int64 {
	m := getModel(ctx, ns, "battle-winner-predictor")
	if m.Status.Serving == nil || m.Status.Serving.Version == nil {
		return 0
	}
	return *m.Status.Serving.Version
}

func readyCondition(ctx context.Context, ns string) metav1.Condition {
	c := meta.FindStatusCondition(getModel(ctx, ns, "battle-winner-predictor").Status.Conditions, mlv1.ConditionReady)
	if c == nil {
		return metav1.Condition{}
	}
	return *c
}

var _ = Describe("Serving", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("renders the Production version's Deployment and Service, owned by the model", func(ctx context.Context) {
		v4 := seedVersion(ns, 4, "0.8723")
		v4.Spec.Artifact.Digest = "sha256:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"
		create(ctx, seedModel(ns, served), v4)
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))

		d := getDeployment(ctx, ns)
		Expect(*d.Spec.Replicas).To(BeEquivalentTo(2))
		Expect(d.OwnerReferences).To(ConsistOf(HaveField("Name", "battle-winner-predictor")))
		Expect(*d.OwnerReferences[0].Controller).To(BeTrue())
		Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("team", "battles"))
		c := d.Spec.Template.Spec.Containers[0]
		Expect(c.Env).To(ConsistOf(
			corev1.EnvVar{Name: "LOG_LEVEL", Value: "info"},
			corev1.EnvVar{Name: "MODEL_NAME", Value: "battle-winner-predictor"},
			corev1.EnvVar{Name: "MODEL_VERSION", Value: "4"},
			corev1.EnvVar{Name: "MODEL_STAGE", Value: "Production"},
			corev1.EnvVar{Name: "MODEL_URI", Value: "s3://ml-artifacts/battle-winner/4/"},
			corev1.EnvVar{Name: "MODEL_PATH", Value: "/var/podium/model"},
		))
		Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "podium-model", MountPath: "/var/podium", ReadOnly: true}))
		fetch := d.Spec.Template.Spec.InitContainers[0]
		Expect(fetch.Image).To(Equal(testFetcherImage))
		Expect(fetch.Args).To(Equal([]string{"fetch", "--uri", "s3://ml-artifacts/battle-winner/4/",
			"--dest", "/var/podium/model", "--digest", v4.Spec.Artifact.Digest}))
		Expect(d.ManagedFields).To(ContainElement(And(HaveField("Manager", FieldOwner), HaveField("Operation", metav1.ManagedFieldsOperationApply))))

		svc := &corev1.Service{}
		Eventually(k8sClient.Get).WithArguments(ctx, types.NamespacedName{Namespace: ns, Name: predictor}, svc).Should(Succeed())
		Expect(svc.Spec.Selector).To(Equal(serving.Selector("battle-winner-predictor")))
		Expect(svc.Spec.Ports).To(ConsistOf(HaveField("Port", int32(8000))))
		Expect(svc.OwnerReferences).To(ConsistOf(HaveField("Name", "battle-winner-predictor")))
	})

	It("reports Serving only once the rollout is done, and rolls to the next Production version", func(ctx context.Context) {
		create(ctx, seedModel(ns, served), seedVersion(ns, 3, "0.8512"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))
		Eventually(readyCondition).WithArguments(ctx, ns).Should(HaveField("Reason", mlv1.ReasonRollingOut))
		Expect(servedVersion(ctx, ns)).To(BeZero())

		reportRollout(ctx, ns, true)
		Eventually(servedVersion).WithArguments(ctx, ns).Should(BeEquivalentTo(3))
		Eventually(readyCondition).WithArguments(ctx, ns).Should(HaveField("Status", metav1.ConditionTrue))
		Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(getVersion(ctx, ns, "battle-winner-predictor-3").Status.Conditions, mlv1.ConditionServing)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())

		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		Eventually(readyCondition).WithArguments(ctx, ns).Should(HaveField("Reason", mlv1.ReasonRollingOut))
		reportRollout(ctx, ns, true)
		Eventually(servedVersion).WithArguments(ctx, ns).Should(BeEquivalentTo(4))
	})

	It("keeps fields other managers set on the Deployment", func(ctx context.Context) {
		create(ctx, seedModel(ns, served), seedVersion(ns, 3, "0.8512"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))
		d := getDeployment(ctx, ns)
		patch := client.RawPatch(types.MergePatchType, []byte(
			`{"metadata":{"annotations":{"team.example/owner":"battles"}},"spec":{"minReadySeconds":5}}`))
		Expect(k8sClient.Patch(ctx, d, patch, client.FieldOwner("kubectl-edit"))).To(Succeed())

		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		d = getDeployment(ctx, ns)
		Expect(d.Annotations).To(HaveKeyWithValue("team.example/owner", "battles"))
		Expect(d.Spec.MinReadySeconds).To(BeEquivalentTo(5))
	})

	It("rolls back automatically when the new version's rollout fails", func(ctx context.Context) {
		create(ctx, seedModel(ns, served), seedVersion(ns, 3, "0.8512"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))
		reportRollout(ctx, ns, true)
		Eventually(servedVersion).WithArguments(ctx, ns).Should(BeEquivalentTo(3))

		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		reportRollout(ctx, ns, false)

		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))
		m := getModel(ctx, ns, "battle-winner-predictor")
		reasons := make([]string, 0, 2)
		for _, h := range m.Status.History[len(m.Status.History)-2:] {
			reasons = append(reasons, strconv.FormatInt(h.Version, 10)+":"+string(h.Reason))
		}
		Expect(reasons).To(Equal([]string{"4:RolloutFailed", "3:Restored"}))
		reportRollout(ctx, ns, true)
		Eventually(servedVersion).WithArguments(ctx, ns).Should(BeEquivalentTo(3))
		Consistently(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))

		labels := map[string]string{"namespace": ns, "model": "battle-winner-predictor"}
		Expect(series("podium_automatic_rollbacks_total", labels)).To(Equal([]float64{1}))
		Expect(series("podium_rollout_duration_seconds", labels)).To(Equal([]float64{2}), "two rollouts of version 3 served")
	})

	It("reports a storage Secret that does not exist from what the pods report", func(ctx context.Context) {
		create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) { m.Spec.Serving.StorageSecretName = "s3-creds" }),
			seedVersion(ns, 3, "0.8512"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))
		Expect(getDeployment(ctx, ns).Spec.Template.Spec.InitContainers[0].EnvFrom).To(ConsistOf(
			HaveField("SecretRef.Name", "s3-creds")))

		By("a kubelet reporting the fetcher waiting for the Secret, as it does")
		d := getDeployment(ctx, ns)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: predictor + "-abc12", Labels: d.Spec.Template.Labels,
				Annotations: d.Spec.Template.Annotations},
			Spec: d.Spec.Template.Spec,
		}
		create(ctx, pod)
		pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "podium-fetch", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "s3-creds" not found`}}}}
		Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
		Eventually(readyCondition).WithArguments(ctx, ns).Should(And(
			HaveField("Reason", mlv1.ReasonRollingOut),
			HaveField("Message", ContainSubstring(`container podium-fetch: CreateContainerConfigError: secret "s3-creds" not found`))))

		By("the Secret created, the rollout completes and the message goes")
		reportRollout(ctx, ns, true)
		Eventually(readyCondition).WithArguments(ctx, ns).Should(HaveField("Reason", mlv1.ReasonRolledOut))
	})

	It("names an image volume the node cannot pull in the model's and the version's conditions", func(ctx context.Context) {
		const ref = "registry.example.com/ml/battle-winner@sha256:4d12aa0e1c5f0c6b5d0f9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c"
		create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) { m.Spec.Serving.BundleMount = mlv1.BundleMountImageVolume }),
			seedVersion(ns, 3, "0.8512", func(v *mlv1.ModelVersion) { v.Spec.Artifact.URI = "oci://" + ref }))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("3"))

		By("a kubelet reporting the predictor waiting for the volume's pull, as it does")
		d := getDeployment(ctx, ns)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: predictor + "-iv123", Labels: d.Spec.Template.Labels,
				Annotations: d.Spec.Template.Annotations},
			Spec: d.Spec.Template.Spec,
		}
		create(ctx, pod)
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "predictor", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "` + ref + `"`}}}}
		Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
		problem := `container predictor: ImagePullBackOff: Back-off pulling image "` + ref + `" (the node cannot pull the ` +
			"bundle's image volume " + ref
		Eventually(readyCondition).WithArguments(ctx, ns).Should(And(
			HaveField("Reason", mlv1.ReasonRollingOut), HaveField("Message", ContainSubstring(problem))))
		Eventually(func() *metav1.Condition {
			return meta.FindStatusCondition(getVersion(ctx, ns, "battle-winner-predictor-3").Status.Conditions, mlv1.ConditionServing)
		}).Should(And(HaveField("Reason", mlv1.ReasonRollingOut), HaveField("Message", ContainSubstring(problem))))

		By("the pull succeeding, the rollout completes and the messages go")
		reportRollout(ctx, ns, true)
		Eventually(readyCondition).WithArguments(ctx, ns).Should(HaveField("Reason", mlv1.ReasonRolledOut))
	})

	It("waits with a clear reason for a claim that does not exist", func(ctx context.Context) {
		v := seedVersion(ns, 3, "0.8512")
		v.Spec.Artifact.URI = "pvc://models/battle-winner/3"
		create(ctx, seedModel(ns, served), v)
		Eventually(readyCondition).WithArguments(ctx, ns).Should(HaveField("Reason", mlv1.ReasonClaimNotFound))
		Expect(templateVersion(ctx, ns)).To(BeEmpty())
	})

	It("says what is wrong with a template without containers", func(ctx context.Context) {
		create(ctx, seedModel(ns, served, func(m *mlv1.RegisteredModel) { m.Spec.Serving.Template.Spec.Containers = []corev1.Container{} }),
			seedVersion(ns, 3, "0.8512"))
		Eventually(readyCondition).WithArguments(ctx, ns).Should(And(
			HaveField("Reason", mlv1.ReasonInvalidServing),
			HaveField("Message", ContainSubstring("add the prediction server's container"))))
		Expect(meta.IsStatusConditionTrue(getModel(ctx, ns, "battle-winner-predictor").Status.Conditions, mlv1.ConditionStalled)).To(BeTrue())
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production")) // the version is written after the model
	})
})

var _ = Describe("Staging serving", func() {
	It("serves the newest Staging version on its own Deployment and removes it when none is left", func(ctx context.Context) {
		ns := newNamespace(ctx)
		staging := func(m *mlv1.RegisteredModel) { m.Spec.Serving.Staging = true }
		create(ctx, seedModel(ns, manual, served, staging), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Staging 4=Staging"))

		const name = "battle-winner-predictor-predictor-staging"
		d := &appsv1.Deployment{}
		key := types.NamespacedName{Namespace: ns, Name: name}
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
			return d.Spec.Template.Annotations[serving.AnnotationVersion]
		}).Should(Equal("4"))
		Expect(*d.Spec.Replicas).To(BeEquivalentTo(1))
		Expect(d.Spec.Template.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "MODEL_STAGE", Value: "Staging"}))
		Eventually(k8sClient.Get).WithArguments(ctx, key, &corev1.Service{}).Should(Succeed())
		Expect(templateVersion(ctx, ns)).To(BeEmpty(), "no Production version, no production Deployment")

		By("promoting v4: the staging Deployment moves to v3, the newest Staging version left")
		requestStage(ctx, ns, "battle-winner-predictor-4", mlv1.StageProduction)
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
			return d.Spec.Template.Annotations[serving.AnnotationVersion]
		}).Should(Equal("3"))

		By("promoting v3 too: no Staging version is left, so the staging objects go")
		requestStage(ctx, ns, "battle-winner-predictor-3", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &appsv1.Deployment{})) }).Should(BeTrue())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &corev1.Service{})) }).Should(BeTrue())
	})
})
