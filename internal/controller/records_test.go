package controller_test

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// records lists the StageRecords of the namespace, oldest first, as "seq:version:from>to".
func records(ctx context.Context, ns string) []string {
	GinkgoHelper()
	var list mlv1.StageRecordList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	mlv1.SortStageRecords(list.Items)
	out := make([]string, 0, len(list.Items))
	for _, r := range list.Items {
		out = append(out, fmt.Sprintf("%d:%d:%s>%s", r.Transition.Sequence, r.Version.Number, r.Transition.From, r.Transition.To))
	}
	return out
}

func getRecord(ctx context.Context, ns, name string) *mlv1.StageRecord {
	GinkgoHelper()
	r := &mlv1.StageRecord{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, r)).To(Succeed())
	return r
}

var _ = Describe("StageRecords", func() {
	It("records each transition once, with what decided it, and nobody can change a record", func(ctx context.Context) {
		ns := newNamespace(ctx)
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Eventually(records).WithArguments(ctx, ns).Should(Equal([]string{"1:3:>Production"}))
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(records).WithArguments(ctx, ns).Should(Equal([]string{
			"1:3:>Production", "2:3:Production>Archived", "3:4:>Production"}))
		converged := waitConverged(ctx, ns)
		Expect(records(ctx, ns)).To(HaveLen(3), "a converged model writes no record twice")
		Expect(resourceVersions(ctx, ns)).To(Equal(converged))
		// The cursor moves with the model's writes of decisions, never with one of its own.
		Expect(getModel(ctx, ns, "battle-winner-predictor").Status.RecordedSequence).To(BeNumerically("<=", 3))

		model := getModel(ctx, ns, "battle-winner-predictor")
		v4 := getVersion(ctx, ns, "battle-winner-predictor-4")
		rec := getRecord(ctx, ns, fmt.Sprintf("battle-winner-predictor-%s-3", model.UID[:8]))
		Expect(rec.Model).To(Equal(mlv1.RecordedModel{Name: model.Name, UID: string(model.UID)}))
		Expect(rec.Version.Name).To(Equal(v4.Name))
		Expect(rec.Version.UID).To(Equal(string(v4.UID)))
		Expect(rec.Version.ArtifactURI).To(Equal(v4.Spec.Artifact.URI))
		Expect(rec.Transition).To(Equal(model.Status.History[2]))
		Expect(rec.Transition.By).To(Equal(mlv1.ByOperator))
		Expect(rec.Gates).To(HaveLen(1))
		Expect(rec.Gates[0].Metric).To(Equal("test_accuracy"))
		Expect(string(*rec.Gates[0].Value)).To(Equal("0.8723"))
		Expect(rec.Gates[0].Passed).To(BeTrue())
		Expect(rec.OwnerReferences).To(BeEmpty(), "a record is not collected with the model")

		By("changing a record: the API server refuses it, whoever asks")
		changed := rec.DeepCopy()
		changed.Transition.By = "mallory"
		err := k8sClient.Update(ctx, changed)
		Expect(err).To(MatchError(ContainSubstring("a StageRecord is a record: its content cannot be changed")))
		changed = rec.DeepCopy()
		changed.Gates = nil
		Expect(k8sClient.Update(ctx, changed)).To(MatchError(ContainSubstring("its content cannot be changed")))
		changed = getRecord(ctx, ns, fmt.Sprintf("battle-winner-predictor-%s-1", model.UID[:8])).DeepCopy()
		changed.Measurements = []mlv1.MetricStatus{{Name: "error_ratio"}}
		Expect(k8sClient.Update(ctx, changed)).To(MatchError(ContainSubstring("its content cannot be changed")))

		By("deleting the model, unmarked: its deletion is the last record, by nobody the operator knows")
		Expect(getModel(ctx, ns, model.Name).Finalizers).To(ContainElement(mlv1.FinalizerStageRecords))
		Expect(k8sClient.Delete(ctx, model)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: model.Name}, &mlv1.RegisteredModel{})
		}).Should(MatchError(ContainSubstring("not found")))
		Expect(records(ctx, ns)).To(Equal([]string{
			"1:3:>Production", "2:3:Production>Archived", "3:4:>Production", "4:4:Production>None"}))
		deleted := getRecord(ctx, ns, fmt.Sprintf("battle-winner-predictor-%s-4", model.UID[:8]))
		Expect(deleted.Transition.Reason).To(Equal(mlv1.ReasonModelDeleted))
		Expect(deleted.Transition.By).To(BeEmpty())
		Expect(deleted.Transition.VersionUID).To(Equal(string(v4.UID)))
		Expect(deleted.Transition.Message).To(ContainSubstring("version 4 stopped serving"))
		Expect(deleted.Transition.Message).To(ContainSubstring("not marked for deletion first (kubectl podium delete)"))
		Expect(deleted.Version.ArtifactURI).To(Equal(v4.Spec.Artifact.URI))

		By("deleting its versions: the records stay")
		Expect(k8sClient.DeleteAllOf(ctx, &mlv1.ModelVersion{}, client.InNamespace(ns))).To(Succeed())
		Consistently(records).WithArguments(ctx, ns).Should(HaveLen(4))
	})

	It("lets a model go with its namespace, where no record can be written any more", func(ctx context.Context) {
		ns := newNamespace(ctx)
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Eventually(records).WithArguments(ctx, ns).Should(Equal([]string{"1:3:>Production"}))
		model := getModel(ctx, ns, "battle-winner-predictor")
		Expect(model.Finalizers).To(ContainElement(mlv1.FinalizerStageRecords))

		// The test's API server has no namespace controller: the namespace stays Terminating,
		// and refuses new objects, as it does while the controller empties it.
		Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Expect(k8sClient.Delete(ctx, model)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: model.Name}, &mlv1.RegisteredModel{})
		}).Should(MatchError(ContainSubstring("not found")))
		Expect(records(ctx, ns)).To(Equal([]string{"1:3:>Production"}))
	})

	It("records the transitions a short spec.historyLimit trims from the model's status at once", func(ctx context.Context) {
		ns := newNamespace(ctx)
		create(ctx, seedModel(ns, func(m *mlv1.RegisteredModel) { m.Spec.HistoryLimit = new(int32(1)) }),
			seedVersion(ns, 3, "0.8512"))
		Eventually(records).WithArguments(ctx, ns).Should(Equal([]string{"1:3:>Production"}))
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(records).WithArguments(ctx, ns).Should(Equal([]string{
			"1:3:>Production", "2:3:Production>Archived", "3:4:>Production"}))
		Expect(getModel(ctx, ns, "battle-winner-predictor").Status.History).To(HaveLen(1))
	})

	It("keeps the newest records of a model past the retention bound, checked every bound's count of transitions", func(ctx context.Context) {
		ns := newNamespace(ctx)
		create(ctx, seedModel(ns))
		// Version 1 enters Production; each later one, more accurate, replaces the one before:
		// version n's transitions are 2n-2 and 2n-1.
		register := func(from, to int64) {
			for n := from; n <= to; n++ {
				create(ctx, seedVersion(ns, n, fmt.Sprintf("0.86%02d", n)))
				Eventually(productionOf).WithArguments(ctx, ns).Should(Equal(n))
			}
		}
		register(1, 8)
		// At transition 10 (with 11, of the same decision), the oldest goes.
		Eventually(records).WithArguments(ctx, ns).Should(HaveLen(14))
		Expect(records(ctx, ns)[0]).To(Equal("2:1:Production>Archived"))

		register(9, 11)
		// At transition 20 (with 21, of the same decision), the oldest 11 go.
		Eventually(records).WithArguments(ctx, ns).Should(HaveLen(recordsPerModel))
		got := records(ctx, ns)
		Expect(got[0]).To(Equal("12:6:Production>Archived"))
		Expect(got[recordsPerModel-1]).To(Equal("21:11:>Production"))
	})
})

var _ = Describe("StageRecords after a crash", Serial, func() {
	It("writes the record of an entry the model's status holds but a crash kept from being written", func(ctx context.Context) {
		ns := newNamespace(ctx)
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Eventually(records).WithArguments(ctx, ns).Should(Equal([]string{"1:3:>Production"}))
		waitConverged(ctx, ns)
		model := getModel(ctx, ns, "battle-winner-predictor")
		name := fmt.Sprintf("battle-winner-predictor-%s-1", model.UID[:8])
		written := getRecord(ctx, ns, name)

		By("stopping the manager and leaving the cluster as a crash after the model's write would")
		stopMgr()
		Expect(k8sClient.Delete(ctx, written)).To(Succeed())
		if model.Status.RecordedSequence != 0 {
			patch := client.MergeFrom(model.DeepCopy())
			model.Status.RecordedSequence = 0
			Expect(k8sClient.Status().Patch(ctx, model, patch)).To(Succeed())
		}

		stopMgr = startManager()
		Eventually(func(g Gomega) {
			rec := &mlv1.StageRecord{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, rec)).To(Succeed())
			g.Expect(rec.Transition).To(Equal(written.Transition))
			g.Expect(rec.Gates).To(Equal(written.Gates))
		}).Should(Succeed())
		Eventually(func() int64 { return getModel(ctx, ns, "battle-winner-predictor").Status.RecordedSequence }).
			Should(Equal(int64(1)))
		Expect(records(ctx, ns)).To(Equal([]string{"1:3:>Production"}))
	})
})
