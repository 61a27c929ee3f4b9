package controller_test

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// historyOf renders a model's history as "version from->to reason" lines.
func historyOf(ctx context.Context, ns string) []string {
	m := getModel(ctx, ns, "battle-winner-predictor")
	out := make([]string, 0, len(m.Status.History))
	for _, h := range m.Status.History {
		out = append(out, fmt.Sprintf("%d %s->%s %s", h.Version, h.From, h.To, h.Reason))
	}
	return out
}

// These specs cover what happens to a model when its objects are deleted, recreated or pushed to
// the limits of the API, on the real API server.
var _ = Describe("Deletion, recreation and limits", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("retires a deleted Production version and restores the previous one", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Archived 4=Production"))

		Expect(k8sClient.Delete(ctx, getVersion(ctx, ns, "battle-winner-predictor-4"))).To(Succeed())
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))
		Expect(productionOf(ctx, ns)).To(BeEquivalentTo(3))
		Expect(historyOf(ctx, ns)).To(ContainElements("4 Production->Archived Deleted", "3 Archived->Production Restored"))

		By("another object claiming number 4 with a failing metric is a new version, not Production")
		create(ctx, seedVersion(ns, 4, "0.5", named("battle-winner-predictor-4-again")))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4-again=None"))
		Consistently(productionOf).WithArguments(ctx, ns).Should(BeEquivalentTo(3))
	})

	It("acts on a request after the newest version is deleted", func(ctx context.Context) {
		create(ctx, seedModel(ns, manual), seedVersion(ns, 3, "0.8512"), seedVersion(ns, 4, "0.8723"), seedVersion(ns, 5, "0.88"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Staging 4=Staging 5=Staging"))
		requestStage(ctx, ns, "battle-winner-predictor-5", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Staging 4=Staging 5=Production"))
		requestStage(ctx, ns, "battle-winner-predictor-3", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Staging 5=Archived"))

		Expect(k8sClient.Delete(ctx, getVersion(ctx, ns, "battle-winner-predictor-5"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getModel(ctx, ns, "battle-winner-predictor").Status.VersionCount).To(BeEquivalentTo(2))
		}).Should(Succeed())
		requestStage(ctx, ns, "battle-winner-predictor-4", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Archived 4=Production"))
		Expect(*getModel(ctx, ns, "battle-winner-predictor").Status.LatestVersion).To(BeEquivalentTo(5))
	})

	It("does not let a recreated model inherit the old one's Production version", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))

		old := getModel(ctx, ns, "battle-winner-predictor")
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &mlv1.RegisteredModel{})
		}).Should(Satisfy(func(err error) bool { return err != nil }))
		create(ctx, seedModel(ns, manual))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Staging"))
		m := getModel(ctx, ns, "battle-winner-predictor")
		Expect(m.Status.ProductionVersion).To(BeNil())
		Expect(m.Status.History).To(BeEmpty())
		Expect(getVersion(ctx, ns, "battle-winner-predictor-3").Status.RegisteredModelUID).To(BeEquivalentTo(m.UID))
	})

	It("records a rollback whose history message would exceed the API's limit", func(ctx context.Context) {
		model := seedModel(ns)
		model.Spec.Promotion.Gates = nil
		full := map[string]mlv1.Number{}
		for i := range 16 {
			metric := fmt.Sprintf("%s%02d", strings.Repeat("m", 61), i)
			model.Spec.Promotion.Gates = append(model.Spec.Promotion.Gates, mlv1.Gate{Metric: metric, Min: numPtr("0.5")})
			full[metric] = "0.9"
		}
		v3 := seedVersion(ns, 3, "0.8512")
		v4 := seedVersion(ns, 4, "0.8723")
		v4.Spec.Metrics = full
		create(ctx, model, v3, v4)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=None 4=Production"))

		requestStage(ctx, ns, "battle-winner-predictor-3", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))
		Expect(getVersion(ctx, ns, "battle-winner-predictor-3").Status.ObservedStageRequest).To(Equal(mlv1.StageProduction))
		for _, h := range getModel(ctx, ns, "battle-winner-predictor").Status.History {
			Expect(utf8.RuneCountInString(h.Message)).To(BeNumerically("<=", mlv1.MaxHistoryMessage))
		}
	})

	It("keeps as many transitions as spec.historyLimit says, and trims when it is lowered", func(ctx context.Context) {
		const model = "battle-winner-predictor"
		create(ctx, seedModel(ns, func(m *mlv1.RegisteredModel) { m.Spec.HistoryLimit = new(int32(3)) }))
		history := func(ctx context.Context) []string {
			entries := getModel(ctx, ns, model).Status.History
			out := make([]string, 0, len(entries))
			for _, h := range entries {
				out = append(out, fmt.Sprintf("%d:%s", h.Version, h.To))
			}
			return out
		}
		// Each version passes the gate and replaces the one before: seven transitions in all.
		for n := int64(1); n <= 4; n++ {
			create(ctx, seedVersion(ns, n, fmt.Sprintf("0.9%d", n)))
			Eventually(productionOf).WithArguments(ctx, ns).Should(Equal(n))
			Expect(history(ctx)).To(HaveLen(min(3, int(2*n-1))), "the history never holds more than the limit")
		}
		Expect(history(ctx)).To(Equal([]string{"3:Production", "3:Archived", "4:Production"}))

		m := getModel(ctx, ns, model)
		patch := client.MergeFrom(m.DeepCopy())
		m.Spec.HistoryLimit = new(int32(1))
		Expect(k8sClient.Patch(ctx, m, patch)).To(Succeed())
		Eventually(history).WithArguments(ctx).Should(Equal([]string{"4:Production"}))
	})

	It("promotes a version numbered 2^53-1, the largest allowed, and orders requests after it", func(ctx context.Context) {
		const largest = 1<<53 - 1
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"), seedVersion(ns, largest, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal(fmt.Sprintf("3=Archived %d=Production", int64(largest))))
		requestStage(ctx, ns, "battle-winner-predictor-3", mlv1.StageProduction)
		Eventually(stages).WithArguments(ctx, ns).Should(Equal(fmt.Sprintf("3=Production %d=Archived", int64(largest))))
	})

	It("lists a model's versions by the field selector spec.registeredModel", func(ctx context.Context) {
		other := seedVersion(ns, 1, "0.9")
		other.Name, other.Spec.RegisteredModel = "other-1", "other"
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"), other)
		var list mlv1.ModelVersionList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns),
			client.MatchingFields{"spec.registeredModel": "battle-winner-predictor"})).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("battle-winner-predictor-3"))
	})

	It("clears Reconciling from a duplicate that waited for its model", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 3, "0.9"), seedVersion(ns, 3, "0.9", named("battle-winner-predictor-3-copy")))
		Eventually(func(g Gomega) {
			v := getVersion(ctx, ns, "battle-winner-predictor-3")
			g.Expect(meta.IsStatusConditionTrue(v.Status.Conditions, mlv1.ConditionReconciling)).To(BeTrue())
		}).Should(Succeed())
		create(ctx, seedModel(ns))
		Eventually(func(g Gomega) {
			v := &mlv1.ModelVersion{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "battle-winner-predictor-3"}, v)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(v.Status.Conditions, mlv1.ConditionStalled)).To(BeTrue())
			g.Expect(meta.FindStatusCondition(v.Status.Conditions, mlv1.ConditionReconciling)).To(BeNil())
		}).Should(Succeed())
	})
})
