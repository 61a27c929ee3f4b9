package controller_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func init() {
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyDuration(2 * time.Second)
}

var _ = Describe("Promotion", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("follows the seed's table: v2 stays None, v4 replaces v3 in Production", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 2, "0.8203"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None"))
		v2 := getVersion(ctx, ns, "battle-winner-predictor-2")
		gates := meta.FindStatusCondition(v2.Status.Conditions, mlv1.ConditionGatesPassed)
		Expect(gates.Status).To(Equal(metav1.ConditionFalse))
		Expect(gates.Reason).To(Equal(mlv1.ReasonGateFailed))
		Expect(gates.Message).To(Equal("test_accuracy 0.8203 < 0.85"))
		Expect(v2.Status.PrimaryMetric).To(Equal("test_accuracy=0.8203"))

		create(ctx, seedVersion(ns, 3, "0.8512"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production"))
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Archived 4=Production"))

		m := getModel(ctx, ns, "battle-winner-predictor")
		Expect(*m.Status.ProductionVersion).To(BeEquivalentTo(4))
		Expect(*m.Status.LatestVersion).To(BeEquivalentTo(4))
		Expect(meta.IsStatusConditionTrue(m.Status.Conditions, mlv1.ConditionReady)).To(BeTrue())
		Expect(m.Status.ObservedGeneration).To(Equal(m.Generation))
		transitions := make([]string, 0, len(m.Status.History))
		for _, h := range m.Status.History {
			transitions = append(transitions, fmt.Sprintf("%d %s->%s %s", h.Version, h.From, h.To, h.Reason))
		}
		Expect(transitions).To(Equal([]string{
			"3 ->Production GatesPassed",
			"3 Production->Archived Superseded",
			"4 ->Production GatesPassed",
		}))
	})

	It("gives one result whatever order the manifests are applied in", func(ctx context.Context) {
		rng := rand.New(rand.NewPCG(7, 11))
		for round := range 6 {
			ns := newNamespace(ctx)
			objs := []client.Object{seedModel(ns), seedVersion(ns, 2, "0.8203"), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723")}
			rng.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
			By(fmt.Sprintf("round %d: %s", round, kinds(objs)))
			create(ctx, objs...)
			Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Archived 4=Production"))
			Expect(productionOf(ctx, ns)).To(BeEquivalentTo(4))
		}
	})

	It("rolls back with one patch of spec.stage, and the newest event wins after it", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 2, "0.8203"), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Archived 4=Production"))

		requestStage(ctx, ns, "battle-winner-predictor-3", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production 4=Archived"))
		m := getModel(ctx, ns, "battle-winner-predictor")
		last := m.Status.History[len(m.Status.History)-1]
		Expect(last.Reason).To(Equal(mlv1.ReasonRollback))
		Expect(last.Message).To(Equal("Rolled back from version 4 by a spec.stage: Production request"))

		By("rolling back to a version whose gates fail")
		requestStage(ctx, ns, "battle-winner-predictor-2", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=Production 3=Archived 4=Archived"))
		m = getModel(ctx, ns, "battle-winner-predictor")
		Expect(m.Status.History[len(m.Status.History)-1].Message).To(ContainSubstring("its gates do not pass (test_accuracy 0.8203 < 0.85)"))

		By("registering a newer version that passes")
		create(ctx, seedVersion(ns, 5, "0.88"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=Archived 3=Archived 4=Archived 5=Production"))
		Consistently(stages).WithArguments(ctx, ns).Should(Equal("2=Archived 3=Archived 4=Archived 5=Production"))
	})

	It("keeps passing versions in Staging in Manual mode until one is requested", func(ctx context.Context) {
		create(ctx, seedModel(ns, manual), seedVersion(ns, 2, "0.8203"), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Staging 4=Staging"))
		Expect(productionOf(ctx, ns)).To(BeZero())
		requestStage(ctx, ns, "battle-winner-predictor-4", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Staging 4=Production"))
	})

	It("retires the Production version on request and restores the previous one", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Archived 4=Production"))
		requestStage(ctx, ns, "battle-winner-predictor-4", mlv1.StageArchived)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))
	})

	It("promotes neither of two versions that claim the same number", func(ctx context.Context) {
		// Both exist before the model does, so neither was ever decided alone.
		create(ctx, seedVersion(ns, 4, "0.8723"), seedVersion(ns, 4, "0.9", named("battle-winner-predictor-4b")), seedModel(ns))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("4=None 4b=None"))
		v := getVersion(ctx, ns, "battle-winner-predictor-4b")
		ready := meta.FindStatusCondition(v.Status.Conditions, mlv1.ConditionReady)
		Expect(ready.Reason).To(Equal(mlv1.ReasonDuplicateVersion))
		Expect(meta.IsStatusConditionTrue(v.Status.Conditions, mlv1.ConditionStalled)).To(BeTrue())
		Consistently(productionOf).WithArguments(ctx, ns).Should(BeZero())

		By("deleting the duplicate")
		Expect(k8sClient.Delete(ctx, v)).To(Succeed())
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("4=Production"))
	})

	It("keeps Production on the original when a duplicate of it appears", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("4=Production"))
		create(ctx, seedVersion(ns, 4, "0.99", named("battle-winner-predictor-4b")))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("4=Production 4b=None"))
		create(ctx, seedVersion(ns, 5, "0.9"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("4=Archived 4b=None 5=Production"))
	})

	It("lets a version wait for its model and picks it up when the model appears", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(func(g Gomega) {
			v := getVersion(ctx, ns, "battle-winner-predictor-4")
			ready := meta.FindStatusCondition(v.Status.Conditions, mlv1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(mlv1.ReasonModelNotFound))
			g.Expect(ready.Message).To(ContainSubstring("RegisteredModel battle-winner-predictor does not exist in namespace " + ns))
		}).Should(Succeed())
		create(ctx, seedModel(ns))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("4=Production"))
	})

	It("reports a metric a gate needs that the version lacks", func(ctx context.Context) {
		v := seedVersion(ns, 1, "0.9")
		delete(v.Spec.Metrics, "test_accuracy")
		create(ctx, seedModel(ns), v)
		Eventually(func(g Gomega) {
			got := getVersion(ctx, ns, v.Name)
			g.Expect(got.Status.Stage).To(Equal(mlv1.StageNone))
			c := meta.FindStatusCondition(got.Status.Conditions, mlv1.ConditionGatesPassed)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(mlv1.ReasonMetricMissing))
			g.Expect(c.Message).To(Equal("test_accuracy is missing; the gate test_accuracy >= 0.85 needs it"))
		}).Should(Succeed())
	})

	It("writes nothing once converged", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 2, "0.8203"), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Archived 4=Production"))
		before := waitConverged(ctx, ns)
		Consistently(resourceVersions).WithArguments(ctx, ns).Should(Equal(before))
	})
})

var _ = Describe("Restarts", Serial, func() {
	It("never changes Production when the manager restarts mid-stream", func(ctx context.Context) {
		ns := newNamespace(ctx)
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Archived 4=Production"))
		requestStage(ctx, ns, "battle-winner-predictor-3", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))

		By("stopping the manager, registering while it is down, starting a new one")
		stopMgr()
		create(ctx, seedVersion(ns, 2, "0.86"))
		stopMgr = startManager()
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=Archived 3=Production 4=Archived"))
		Consistently(productionOf).WithArguments(ctx, ns).Should(BeEquivalentTo(3))
	})
})

// waitConverged waits until no Podium object in the namespace has changed for two seconds, and
// returns their resourceVersions.
func waitConverged(ctx context.Context, ns string) map[string]string {
	var last map[string]string
	Eventually(func() bool {
		current := resourceVersions(ctx, ns)
		same := reflect.DeepEqual(current, last)
		last = current
		return same
	}).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).MustPassRepeatedly(4).Should(BeTrue())
	return last
}

// resourceVersions maps every Podium object in a namespace to its resourceVersion.
func resourceVersions(ctx context.Context, ns string) map[string]string {
	out := map[string]string{}
	var models mlv1.RegisteredModelList
	Expect(k8sClient.List(ctx, &models, client.InNamespace(ns))).To(Succeed())
	for _, m := range models.Items {
		out["rm/"+m.Name] = m.ResourceVersion
	}
	var versions mlv1.ModelVersionList
	Expect(k8sClient.List(ctx, &versions, client.InNamespace(ns))).To(Succeed())
	for _, v := range versions.Items {
		out["mv/"+v.Name] = v.ResourceVersion
	}
	return out
}

func kinds(objs []client.Object) string {
	s := ""
	for _, o := range objs {
		s += o.GetName() + " "
	}
	return s
}
