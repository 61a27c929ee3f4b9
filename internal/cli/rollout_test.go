package cli

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// The seed model's prediction Deployments.
const (
	stableDeployment = seed + "-predictor"
	canaryDeployment = seed + "-predictor-canary"
)

// canaryModel is the seed model served on 4 replicas, rolling new versions out by a canary of
// the given steps, without analysis: the CLI suite runs no Prometheus.
func canaryModel(ns string, steps ...mlv1.RolloutStep) *mlv1.RegisteredModel {
	m := seedModel(ns)
	m.Spec.Serving = &mlv1.Serving{
		Replicas: new(int32(4)),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "predictor", Image: "registry.example.com/battle-api:1.4",
			Ports: []corev1.ContainerPort{{ContainerPort: 8000}},
		}}}},
		Rollout: &mlv1.Rollout{Strategy: mlv1.RolloutCanary, Steps: steps},
	}
	return m
}

func step(weight int32, d time.Duration) mlv1.RolloutStep {
	return mlv1.RolloutStep{Weight: weight, Duration: metav1.Duration{Duration: d}}
}

// playDeployments plays the Deployment controller, which the suite does not run: every
// Deployment of ns reports all its replicas updated and available.
func playDeployments(ctx context.Context, g Gomega, ns string) {
	var list appsv1.DeploymentList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for i := range list.Items {
		d := &list.Items[i]
		n := *d.Spec.Replicas
		if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == n && d.Status.Replicas == n {
			continue
		}
		base := d.DeepCopy()
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n,
			ReadyReplicas: n, AvailableReplicas: n}
		if err := k8sClient.Status().Patch(ctx, d, client.MergeFrom(base)); !apierrors.IsNotFound(err) {
			g.Expect(err).NotTo(HaveOccurred())
		}
	}
}

// replicasOf returns the replicas of a Deployment in ns, -1 when it does not exist.
func replicasOf(ctx context.Context, ns, name string) int32 {
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return -1
	}
	return *d.Spec.Replicas
}

func getModel(ctx context.Context, ns string) *mlv1.RegisteredModel {
	m := &mlv1.RegisteredModel{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: seed}, m)).To(Succeed())
	return m
}

// readyReason is the reason of the model's Ready condition, empty before it has one.
func readyReason(m *mlv1.RegisteredModel) string {
	if c := meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// startCanary runs the operator on a canary model of steps in ns, makes version 3 Production and
// registers version 4, which becomes the candidate of a canary. The canary's pods do not serve
// until a spec plays the Deployments.
func startCanary(ctx context.Context, ns string, steps ...mlv1.RolloutStep) {
	GinkgoHelper()
	create(ctx, canaryModel(ns, steps...))
	startOperator(ns)
	registerSeed(ctx, ns, 3, "0.8512")
	Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))
	registerSeed(ctx, ns, 4, "0.8723")
	Eventually(func(g Gomega) {
		g.Expect(getModel(ctx, ns).Status.Rollout).To(HaveField("Phase", mlv1.RolloutProgressing))
	}).Should(Succeed())
	// The model's decision is written before the version's status (the write order): the
	// version may say so a moment later.
	Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Staging"), "version 4 is the canary's candidate")
}

var _ = Describe("pause and resume", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("holds a canary's step past its duration, and resumes it to Production", func(ctx context.Context) {
		startCanary(ctx, ns, step(25, 2*time.Second), step(50, 2*time.Second))

		r := podium(ctx, ns, "pause", seed)
		Expect(r.err).NotTo(HaveOccurred(), r.stderr)
		Expect(r.stdout).To(MatchRegexp(`^Paused the canary rollout of version 4 of battle-winner-predictor ` +
			`\(annotated it ml.podium.dev/pause-rollout=true\)\nRollout: Paused, version 4 on 25% of the pods, started \S+ ago: ` +
			`Paused by the annotation ml.podium.dev/pause-rollout: Step 1 of 2: its canary pods are starting; ` +
			`remove the annotation \(kubectl podium resume\) to resume, and the step starts again from its beginning\n$`))
		Expect(r.stderr).To(Equal("Waiting up to 2m0s for the canary rollout of version 4 of battle-winner-predictor to pause\n"))
		Expect(getModel(ctx, ns).Annotations).To(HaveKeyWithValue(mlv1.AnnotationPauseRollout, "true"))
		Expect(succeed(ctx, ns, "pause", seed)).To(HavePrefix(
			"The canary rollout of version 4 of battle-winner-predictor is already paused by ml.podium.dev/pause-rollout\n"))

		By("serving the canary's pods: the step would begin, and end 2s later")
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(getModel(ctx, ns).Status.Rollout.Message).To(ContainSubstring("Step 1 of 2: 25% of the pods run version 4"))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			playDeployments(ctx, g, ns)
			m := getModel(ctx, ns)
			g.Expect(m.Status.Rollout.Phase).To(Equal(mlv1.RolloutPaused))
			g.Expect(m.Status.Rollout.Step).To(HaveValue(Equal(int32(0))))
			g.Expect(readyReason(m)).To(Equal(mlv1.ReasonPausedByAnnotation))
			stalled := meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(mlv1.ReasonPausedByAnnotation))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(1)), "the pods stay where they are")
			g.Expect(stages(ctx, ns)).To(Equal("3=Production 4=Staging"), "a held candidate is not promoted")
		}).WithTimeout(5 * time.Second).Should(Succeed())
		Expect(succeed(ctx, ns, "status", seed)).To(MatchRegexp(`Stalled=True \(PausedByAnnotation, \S+ ago\): Paused by the annotation`))

		r = podium(ctx, ns, "resume", seed)
		Expect(r.err).NotTo(HaveOccurred(), r.stderr)
		Expect(r.stdout).To(MatchRegexp(`^Resumed the canary rollout of version 4 of battle-winner-predictor \(removed the ` +
			`annotation ml.podium.dev/pause-rollout\); its step starts again from its beginning\n` +
			`Rollout: Progressing, version 4 on 25% of the pods, started \S+ ago: Step 1 of 2: 25% of the pods run version 4\n$`))
		Expect(getModel(ctx, ns).Annotations).NotTo(HaveKey(mlv1.AnnotationPauseRollout))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(stages(ctx, ns)).To(Equal("3=Archived 4=Production"))
			g.Expect(getModel(ctx, ns).Status.Rollout.Phase).To(Equal(mlv1.RolloutSucceeded))
		}).Should(Succeed())

		r = podium(ctx, ns, "resume", seed)
		Expect(r.err).To(MatchError(HavePrefix("RegisteredModel battle-winner-predictor runs no canary rollout (its last, " +
			"of version 4, is Succeeded: Passed 2 canary steps), and no ml.podium.dev/pause-rollout annotation holds the next one")))
	})

	It("says why a rollout paused by its analysis waits, and that it resumes by itself", func(ctx context.Context) {
		// No operator runs: the status is the one an inconclusive analysis leaves.
		m := canaryModel(ns, step(25, time.Minute))
		create(ctx, m)
		m.Status.Rollout = &mlv1.RolloutStatus{Version: 4, VersionUID: "uid-4", Phase: mlv1.RolloutPaused, Step: new(int32(0)),
			Weight: 25, Message: "Paused: the analysis is inconclusive; it resumes when measurements come back: error-rate: no data"}
		Expect(k8sClient.Status().Update(ctx, m)).To(Succeed())

		r := podium(ctx, ns, "resume", seed)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.stdout).To(Equal("The canary rollout of version 4 of battle-winner-predictor is not paused by " +
			"ml.podium.dev/pause-rollout: it is paused because its analysis is inconclusive, and resumes by itself when " +
			"measurements come back\nRollout: Paused, version 4 on 25% of the pods: Paused: the analysis is inconclusive; " +
			"it resumes when measurements come back: error-rate: no data\n"))
		Expect(getModel(ctx, ns).Annotations).NotTo(HaveKey(mlv1.AnnotationPauseRollout))
	})

	It("annotates without waiting with --no-wait", func(ctx context.Context) {
		m := canaryModel(ns, step(25, time.Minute))
		create(ctx, m)
		m.Status.Rollout = &mlv1.RolloutStatus{Version: 4, VersionUID: "uid-4", Phase: mlv1.RolloutProgressing, Step: new(int32(0))}
		Expect(k8sClient.Status().Update(ctx, m)).To(Succeed())
		Expect(succeed(ctx, ns, "pause", seed, "--no-wait")).To(Equal("Asked to pause the canary rollout of version 4 of " +
			"battle-winner-predictor (annotated it ml.podium.dev/pause-rollout=true)\n"))
		Expect(getModel(ctx, ns).Annotations).To(HaveKeyWithValue(mlv1.AnnotationPauseRollout, "true"))
		Expect(succeed(ctx, ns, "resume", seed, "--no-wait")).To(Equal("Asked to resume the canary rollout of version 4 of " +
			"battle-winner-predictor (removed the annotation ml.podium.dev/pause-rollout)\n"))
		Expect(getModel(ctx, ns).Annotations).NotTo(HaveKey(mlv1.AnnotationPauseRollout))
	})

	It("refuses when no canary runs, or there is no such model", func(ctx context.Context) {
		seedStory(ctx, ns)
		for _, command := range []string{"pause", "abort"} {
			r := podium(ctx, ns, command, seed)
			Expect(r.err).To(MatchError(HavePrefix(fmt.Sprintf("RegisteredModel battle-winner-predictor runs no canary rollout "+
				"(it has had none); %s", command))), command)
			r = podium(ctx, ns, command, "nope")
			Expect(r.err).To(MatchError(fmt.Sprintf("RegisteredModel nope not found in namespace %[1]s; "+
				"list them with kubectl get registeredmodels -n %[1]s", ns)), command)
		}
		Expect(getModel(ctx, ns).Annotations).NotTo(HaveKey(mlv1.AnnotationPauseRollout))
	})
})

var _ = Describe("abort", func() {
	It("archives the candidate, and the traffic returns to the Production version", func(ctx context.Context) {
		ns := newNamespace(ctx)
		startCanary(ctx, ns, step(25, time.Hour))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(1)))
			g.Expect(replicasOf(ctx, ns, stableDeployment)).To(Equal(int32(3)))
		}).Should(Succeed())

		r := podium(ctx, ns, "abort", seed)
		Expect(r.err).NotTo(HaveOccurred(), r.stderr)
		Expect(r.stdout).To(MatchRegexp(`^Aborted the canary rollout of version 4 of battle-winner-predictor: version 4 is ` +
			`Archived, and version 3 is Production\nRollout: Aborted, version 4, started \S+ ago: ` +
			`Ended: version 4 was Archived \(ArchiveRequest\)\n$`))
		Expect(r.stderr).To(Equal("Waiting up to 2m0s for the canary rollout of version 4 of battle-winner-predictor to abort\n"))
		// The command returned once the model recorded the decision; the candidate's own status
		// is written after the model's (the write order), a moment later.
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))
		Expect(getVersion(ctx, ns, seed+"-4").Spec.Stage).To(Equal(mlv1.StageArchived))
		Expect(succeed(ctx, ns, "history", seed)).To(MatchRegexp(`\n\S+\s+4\s+Staging\s+Archived\s+ArchiveRequest\s`))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)), "the canary's pods are removed")
			g.Expect(replicasOf(ctx, ns, stableDeployment)).To(Equal(int32(4)), "the stable pods take every request")
		}).Should(Succeed())

		r = podium(ctx, ns, "abort", seed)
		Expect(r.err).To(MatchError(HavePrefix("RegisteredModel battle-winner-predictor runs no canary rollout (its last, of " +
			"version 4, is Aborted: Ended: version 4 was Archived (ArchiveRequest)); abort ends a running canary")))
	})
})
