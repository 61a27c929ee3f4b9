package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/admission"
)

// governedLabel marks the namespaces this file's policies are bound to, so that the rest of the
// suite, which runs while they are installed, writes versions as if they were not.
const governedLabel = "podium.test/governance"

// The admission policies of config/governance, as config/default and the chart install them: who
// registered a version and who asked for its stage, stamped and unforgeable, copied into the
// history; and the separation of duties of a namespace's ConfigMap podium-governance.
var _ = Describe("The governance admission policies", Ordered, func() {
	var (
		// open has no ConfigMap podium-governance; governed has one.
		open, governed string
		// carol registers versions; alice approves them in governed; bob is another user;
		// dave approves as a member of the group ml-approvers.
		carol, alice, bob, dave client.Client
	)

	BeforeAll(func(ctx context.Context) {
		objs := configObjects(filepath.Join("..", "..", "config", "governance"))
		Expect(objs).To(HaveLen(8))
		// The API server compiles every expression on create, and refuses one that fails to
		// type-check or whose estimated cost exceeds the limit.
		for _, obj := range objs {
			scopeToGoverned(obj)
			Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "the API server refuses %s", obj.GetName())
			DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, obj)).To(Succeed()) })
		}

		open, governed = governedNamespace(ctx), governedNamespace(ctx)
		writer := []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
			Resources: []string{"registeredmodels", "modelversions"}, Verbs: []string{"get", "create", "update", "patch"}}}
		for _, ns := range []string{open, governed} {
			for _, user := range []string{"carol", "alice", "bob", "dave"} {
				grant(ctx, ns, user, writer...)
			}
		}
		carol, alice, bob = clientAs("carol", "ml-team"), clientAs("alice", "ml-team"), clientAs("bob", "ml-team")
		dave = clientAs("dave", "ml-team", "ml-approvers")
	})

	It("stamps who registered a version over a forged value", func(ctx context.Context) {
		By("waiting for the API server to enforce the policies, with dry runs")
		Eventually(func(g Gomega) {
			v := seedVersion(open, 3, "0.8512", registeredBy("alice"))
			g.Expect(carol.Create(ctx, v, client.DryRunAll)).To(Succeed())
			g.Expect(v.Annotations).To(HaveKeyWithValue(mlv1.AnnotationRegisteredBy, "carol"))
		}).Should(Succeed())
		Expect(carol.Create(ctx, seedModel(open))).To(Succeed())
		v := seedVersion(open, 3, "0.8512", registeredBy("alice"))
		Expect(carol.Create(ctx, v)).To(Succeed())
		Expect(v.Annotations).To(HaveKeyWithValue(mlv1.AnnotationRegisteredBy, "carol"))
		Expect(v.Annotations).NotTo(HaveKey(mlv1.AnnotationStageRequestedBy), "no stage was requested")
		Eventually(func() int64 { return productionOf(ctx, open) }).Should(BeEquivalentTo(3))

		Eventually(func() error {
			return patchAs(ctx, carol, open, v.Name, `{"metadata":{"annotations":{"ml.podium.dev/registered-by":"alice"}}}`,
				client.DryRunAll)
		}).Should(MatchError(ContainSubstring("cannot be set or changed")))
	})

	It("refuses to change or remove registered-by afterwards", func(ctx context.Context) {
		name := "battle-winner-predictor-3"
		for _, patch := range []string{
			`{"metadata":{"annotations":{"ml.podium.dev/registered-by":"alice"}}}`,
			`{"metadata":{"annotations":{"ml.podium.dev/registered-by":null}}}`,
		} {
			err := patchAs(ctx, carol, open, name, patch)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("the annotation ml.podium.dev/registered-by records who created " +
				"the ModelVersion and cannot be set or changed")))
		}
		Expect(getVersion(ctx, open, name).Annotations).To(HaveKeyWithValue(mlv1.AnnotationRegisteredBy, "carol"))
	})

	It("stamps who requested a stage, and the history says who caused each transition", func(ctx context.Context) {
		v4 := seedVersion(open, 4, "0.8723")
		Expect(carol.Create(ctx, v4)).To(Succeed())
		Eventually(func() int64 { return productionOf(ctx, open) }).Should(BeEquivalentTo(4))

		Expect(patchAs(ctx, bob, open, "battle-winner-predictor-3", `{"spec":{"stage":"Production"}}`)).To(Succeed())
		Expect(getVersion(ctx, open, "battle-winner-predictor-3").Annotations).To(And(
			HaveKeyWithValue(mlv1.AnnotationStageRequestedBy, "bob"),
			HaveKeyWithValue(mlv1.AnnotationRegisteredBy, "carol")))
		Eventually(func() int64 { return productionOf(ctx, open) }).Should(BeEquivalentTo(3))
		Expect(historyBy(ctx, open)).To(Equal([]string{
			"3 -> Production by podium",
			"3 Production -> Archived by podium",
			"4 -> Production by podium",
			"4 Production -> Archived by bob",
			"3 Archived -> Production by bob",
		}))
	})

	It("refuses to forge stage-requested-by, and overwrites it on a stage request", func(ctx context.Context) {
		name := "battle-winner-predictor-4"
		err := patchAs(ctx, bob, open, name, `{"metadata":{"annotations":{"ml.podium.dev/stage-requested-by":"alice"}}}`)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring("the annotation ml.podium.dev/stage-requested-by records who last " +
			"changed spec.stage and cannot be set or changed otherwise")))

		Expect(patchAs(ctx, bob, open, name,
			`{"metadata":{"annotations":{"ml.podium.dev/stage-requested-by":"alice"}},"spec":{"stage":"Production"}}`)).To(Succeed())
		Expect(getVersion(ctx, open, name).Annotations).To(HaveKeyWithValue(mlv1.AnnotationStageRequestedBy, "bob"))
		Eventually(func() int64 { return productionOf(ctx, open) }).Should(BeEquivalentTo(4))
	})

	It("lets anyone approve in a namespace without the ConfigMap, their own versions too", func(ctx context.Context) {
		Expect(carol.Create(ctx, seedVersion(open, 5, "0.80"))).To(Succeed())
		Expect(patchAs(ctx, carol, open, "battle-winner-predictor-5", `{"spec":{"stage":"Production"}}`)).To(Succeed())
		Eventually(func() int64 { return productionOf(ctx, open) }).Should(BeEquivalentTo(5))
	})

	It("keeps the annotations through a GitOps controller's server-side applies, which do not name them",
		func(ctx context.Context) {
			apply := func(description, stage string) error {
				v := seedVersion(open, 6, "0.80")
				v.TypeMeta = metav1.TypeMeta{APIVersion: mlv1.GroupVersion.String(), Kind: "ModelVersion"}
				v.Spec.Description = description
				v.Spec.Stage = mlv1.Stage(stage)
				content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(v)
				Expect(err).NotTo(HaveOccurred())
				unstructured.RemoveNestedField(content, "status")
				return bob.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: content}),
					client.FieldOwner("argocd-controller"), client.ForceOwnership)
			}
			Expect(apply("first", "")).To(Succeed())
			Expect(apply("second", "")).To(Succeed())
			Expect(apply("third", "Production")).To(Succeed())
			Expect(apply("fourth", "Production")).To(Succeed())
			v := getVersion(ctx, open, "battle-winner-predictor-6")
			Expect(v.Spec.Description).To(Equal("fourth"))
			Expect(v.Annotations).To(And(
				HaveKeyWithValue(mlv1.AnnotationRegisteredBy, "bob"),
				HaveKeyWithValue(mlv1.AnnotationStageRequestedBy, "bob")))
		})

	It("records who deleted the Production version: whoever marked it, the only user who may then delete it",
		func(ctx context.Context) {
			create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: open, Name: "version-deleter"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
					Resources: []string{"modelversions"}, Verbs: []string{"delete"}}}},
				&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: open, Name: "version-deleters"},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "version-deleter"},
					Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"},
						{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "carol"}}})
			waitConverged(ctx, open)
			production := productionOf(ctx, open)
			name := fmt.Sprintf("battle-winner-predictor-%d", production)
			Expect(getVersion(ctx, open, name).Finalizers).To(ContainElement(mlv1.FinalizerStageRecords),
				"the Production version carries the finalizer that records its deletion")

			err := patchAs(ctx, carol, open, name, `{"metadata":{"annotations":{"ml.podium.dev/delete-requested-by":"alice"}}}`)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("the annotation ml.podium.dev/delete-requested-by records who marked " +
				"the ModelVersion for deletion and cannot be set or changed otherwise")))

			By("marking it as bob, over a forged value; another finalizer holds it once deleted")
			Expect(patchAs(ctx, bob, open, name, `{"metadata":{"annotations":{"ml.podium.dev/delete-requested":"1",`+
				`"ml.podium.dev/delete-requested-by":"alice"}}}`)).To(Succeed())
			v := getVersion(ctx, open, name)
			Expect(v.Annotations).To(HaveKeyWithValue(mlv1.AnnotationDeleteRequestedBy, "bob"))
			Expect(patchAs(ctx, k8sClient, open, name, `{"metadata":{"finalizers":["`+mlv1.FinalizerStageRecords+
				`","podium.test/hold"]}}`)).To(Succeed())

			By("deleting it as carol, who did not mark it")
			err = carol.Delete(ctx, v)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("user carol may not delete ModelVersion %s: user bob "+
				"marked it for deletion, and the record of its deletion names who marked it; mark it as yourself first "+
				"(kubectl podium delete battle-winner-predictor --version %d does both)", name, production))))

			By("deleting it as bob: the history names him, while the version is still there")
			Expect(bob.Delete(ctx, v)).To(Succeed())
			Eventually(func() int64 { return productionOf(ctx, open) }).ShouldNot(Equal(production))
			Expect(historyBy(ctx, open)[len(historyBy(ctx, open))-2:]).To(Equal([]string{
				fmt.Sprintf("%d Production -> Archived by bob", production),
				fmt.Sprintf("%d Archived -> Production by bob", productionOf(ctx, open)),
			}))
			Eventually(func() []string { return getVersion(ctx, open, name).Finalizers }).
				Should(Equal([]string{"podium.test/hold"}), "the operator's finalizer goes once the history holds the deletion")
			v = getVersion(ctx, open, name)
			Expect(v.Status.Stage).To(Equal(mlv1.StageArchived), "a version being deleted does not say Production")
			Expect(getVersion(ctx, open, fmt.Sprintf("battle-winner-predictor-%d", productionOf(ctx, open))).Finalizers).
				To(ContainElement(mlv1.FinalizerStageRecords), "the restored version carries it now")

			By("marking it again while it is being deleted: refused, it names who deleted it")
			err = patchAs(ctx, carol, open, name, `{"metadata":{"annotations":{"ml.podium.dev/delete-requested":"2"}}}`)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("ModelVersion %s is being deleted, and its mark "+
				"ml.podium.dev/delete-requested names who deleted it (bob): it cannot be set or changed any more", name))))
			Expect(patchAs(ctx, k8sClient, open, name, `{"metadata":{"finalizers":null}}`)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: open, Name: name}, v))
			}).Should(BeTrue())
		})

	It("lets only the operator remove the finalizer that records a deletion", func(ctx context.Context) {
		waitConverged(ctx, open)
		name := fmt.Sprintf("battle-winner-predictor-%d", productionOf(ctx, open))
		Expect(getVersion(ctx, open, name).Finalizers).To(ContainElement(mlv1.FinalizerStageRecords))
		Expect(getModel(ctx, open, "battle-winner-predictor").Finalizers).To(ContainElement(mlv1.FinalizerStageRecords))
		operator := "system:serviceaccount:podium-system:podium-controller-manager"
		create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: open, Name: "operator"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "bob"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "podium-system",
				Name: "podium-controller-manager"}}})

		By("removing it as bob, who may patch both, in a merge patch and in a list without it")
		for _, patch := range []string{`{"metadata":{"finalizers":null}}`, `{"metadata":{"finalizers":["podium.test/other"]}}`} {
			err := patchAs(ctx, bob, open, name, patch)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("only the operator (%s) removes the finalizer "+
				"ml.podium.dev/stage-records of ModelVersion %s: it holds the object until the operator has recorded "+
				"its deletion", operator, name))))
			err = patchModelAs(ctx, bob, open, patch)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("removes the finalizer ml.podium.dev/stage-records of " +
				"RegisteredModel battle-winner-predictor")))
		}
		Expect(getVersion(ctx, open, name).Finalizers).To(ContainElement(mlv1.FinalizerStageRecords))

		By("adding another finalizer as bob, which keeps the operator's")
		Expect(patchAs(ctx, bob, open, name, `{"metadata":{"finalizers":["`+mlv1.FinalizerStageRecords+
			`","podium.test/other"]}}`, client.DryRunAll)).To(Succeed())

		By("removing it as the operator's ServiceAccount, and as a member of system:masters")
		sa := clientAsServiceAccount("podium-system", "podium-controller-manager")
		Expect(patchAs(ctx, sa, open, name, `{"metadata":{"finalizers":null}}`, client.DryRunAll)).To(Succeed())
		Expect(patchModelAs(ctx, sa, open, `{"metadata":{"finalizers":null}}`, client.DryRunAll)).To(Succeed())
		masters := clientAs("root", "system:masters")
		Expect(patchAs(ctx, masters, open, name, `{"metadata":{"finalizers":null}}`, client.DryRunAll)).To(Succeed())
	})

	It("records who deleted a model: whoever marked it, the only user who may then delete it", func(ctx context.Context) {
		create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: open, Name: "deleter"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
				Resources: []string{"registeredmodels"}, Verbs: []string{"delete"}}}},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: open, Name: "deleters"},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deleter"},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"},
					{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "carol"}}})
		waitConverged(ctx, open)
		production := productionOf(ctx, open)
		Expect(production).NotTo(BeZero())

		err := patchModelAs(ctx, carol, open, `{"metadata":{"annotations":{"ml.podium.dev/delete-requested-by":"alice"}}}`)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring("the annotation ml.podium.dev/delete-requested-by records who marked " +
			"the RegisteredModel for deletion and cannot be set or changed otherwise")))

		By("marking it as bob, over a forged value")
		Expect(patchModelAs(ctx, bob, open,
			`{"metadata":{"annotations":{"ml.podium.dev/delete-requested":"1","ml.podium.dev/delete-requested-by":"alice"}}}`)).To(Succeed())
		model := getModel(ctx, open, "battle-winner-predictor")
		Expect(model.Annotations).To(HaveKeyWithValue(mlv1.AnnotationDeleteRequestedBy, "bob"))

		By("deleting it as carol, who did not mark it")
		Expect(carol.Delete(ctx, model, client.DryRunAll)).To(Succeed(), "a dry run checks the rest")
		err = carol.Delete(ctx, model)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring("user carol may not delete RegisteredModel battle-winner-predictor: " +
			"user bob marked it for deletion")))

		By("changing a StageRecord's labels: refused, whoever asks")
		rec := lastRecord(ctx, open)
		err = k8sClient.Patch(ctx, &rec, client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"ml.podium.dev/model":"another"}}}`)))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring("a StageRecord is a record and is never changed, not even its labels")))

		By("deleting it as bob: the record of the deletion names him")
		before := len(records(ctx, open))
		Expect(bob.Delete(ctx, model)).To(Succeed())
		Eventually(records).WithArguments(ctx, open).Should(HaveLen(before + 1))
		deleted := lastRecord(ctx, open)
		Expect(deleted.Transition.Reason).To(Equal(mlv1.ReasonModelDeleted))
		Expect(deleted.Transition.By).To(Equal("bob"))
		Expect(deleted.Transition.Version).To(Equal(production))
		Expect(deleted.Transition.From).To(Equal(mlv1.StageProduction))
		Expect(deleted.Transition.To).To(Equal(mlv1.StageNone))
		Expect(deleted.Transition.Time.Time).To(BeTemporally("~", time.Now(), time.Minute))
	})

	Context("with the ConfigMap podium-governance", func() {
		whoMayApprove := "(users: alice; groups: ml-approvers)"

		BeforeAll(func(ctx context.Context) {
			create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "podium-governance"},
				Data: map[string]string{
					"approvers": "alice", "approverGroups": "ml-approvers", "requireManualMode": "true",
				},
			})
		})

		It("refuses an Automatic model, and admits a Manual one", func(ctx context.Context) {
			Eventually(func() error {
				return carol.Create(ctx, seedModel(governed), client.DryRunAll)
			}).Should(MatchError(ContainSubstring("RegisteredModels in namespace " + governed + " must set " +
				"spec.promotion.mode: Manual: the ConfigMap podium-governance there sets requireManualMode, so that " +
				"only its approvers promote " + whoMayApprove)))
			Expect(carol.Create(ctx, seedModel(governed, manual))).To(Succeed())
			Expect(carol.Create(ctx, seedVersion(governed, 3, "0.8512"))).To(Succeed())
			Eventually(func() string { return stages(ctx, governed) }).Should(Equal("3=Staging"))
		})

		It("refuses a request for Production from a user who is not an approver, and changes nothing", func(ctx context.Context) {
			name := "battle-winner-predictor-3"
			before := getVersion(ctx, governed, name)
			err := patchAs(ctx, bob, governed, name, `{"spec":{"stage":"Production"}}`)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("user bob may not request spec.stage: Production in namespace " +
				governed + ": the ConfigMap podium-governance there lets only its approvers promote or archive " +
				"versions; ask one of them " + whoMayApprove)))
			Expect(patchAs(ctx, bob, governed, name, `{"spec":{"stage":"Archived"}}`)).To(MatchError(
				ContainSubstring("user bob may not request spec.stage: Archived")))

			after := getVersion(ctx, governed, name)
			Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
			Expect(after.Spec.Stage).To(BeEmpty())
			Expect(stages(ctx, governed)).To(Equal("3=Staging"))
		})

		It("lets an approver promote, by name or by group, and records who", func(ctx context.Context) {
			Expect(patchAs(ctx, dave, governed, "battle-winner-predictor-3", `{"spec":{"stage":"Production"}}`,
				client.DryRunAll)).To(Succeed())
			Expect(patchAs(ctx, alice, governed, "battle-winner-predictor-3", `{"spec":{"stage":"Production"}}`)).To(Succeed())
			Eventually(func() int64 { return productionOf(ctx, governed) }).Should(BeEquivalentTo(3))
			Expect(historyBy(ctx, governed)).To(Equal([]string{"3 Staging -> Production by alice"}))
		})

		It("refuses an approver's own version, until the ConfigMap allows self-approval", func(ctx context.Context) {
			Expect(alice.Create(ctx, seedVersion(governed, 4, "0.8723"))).To(Succeed())
			name := "battle-winner-predictor-4"
			err := patchAs(ctx, alice, governed, name, `{"spec":{"stage":"Production"}}`)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("user alice registered ModelVersion " + name + " and may not also " +
				"approve it: the ConfigMap podium-governance in namespace " + governed + " separates the two duties; " +
				"ask another approver " + whoMayApprove)))
			Expect(getVersion(ctx, governed, name).Spec.Stage).To(BeEmpty())

			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "podium-governance"}}
			Expect(k8sClient.Patch(ctx, cm, client.RawPatch(types.MergePatchType,
				[]byte(`{"data":{"allowSelfApproval":"true"}}`)))).To(Succeed())
			Eventually(func() error {
				return patchAs(ctx, alice, governed, name, `{"spec":{"stage":"Production"}}`)
			}).Should(Succeed())
			Eventually(func() int64 { return productionOf(ctx, governed) }).Should(BeEquivalentTo(4))
		})

		// The side doors: what else moves Production, holds or skips a rollout, or erases the
		// record, tried by bob, who may write and delete models and versions but approves nothing.
		It("refuses a non-approver's withdrawal of a request, which a sync would otherwise turn into a new one", func(ctx context.Context) {
			deleter := rbacv1.PolicyRule{APIGroups: []string{mlv1.GroupVersion.Group},
				Resources: []string{"registeredmodels", "modelversions"}, Verbs: []string{"delete"}}
			create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "deleter"},
				Rules: []rbacv1.PolicyRule{deleter}},
				&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "deleters"},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deleter"},
					Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"},
						{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "alice"}}})
			name := "battle-winner-predictor-4"
			waitConverged(ctx, governed) // the operator adds its finalizer to the new Production version
			before := getVersion(ctx, governed, name)
			for _, patch := range []string{`{"spec":{"stage":null}}`, `{"spec":{"stage":"Staging"}}`, `{"spec":{"stage":"None"}}`} {
				err := patchAs(ctx, bob, governed, name, patch)
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", patch, err)
				Expect(err).To(MatchError(ContainSubstring("user bob may not withdraw the spec.stage: Production request of " +
					"ModelVersion " + name + " in namespace " + governed + ": the ConfigMap podium-governance there lets " +
					"only its approvers change a request once made")))
			}
			Expect(getVersion(ctx, governed, name).ResourceVersion).To(Equal(before.ResourceVersion), "a refusal changes nothing")
			Expect(patchAs(ctx, alice, governed, name, `{"spec":{"stage":null}}`, client.DryRunAll)).To(Succeed(),
				"an approver may withdraw it")
		})

		It("refuses anyone's deletion of a version that serves, which an approver archives first, and a non-approver's of a model with history", func(ctx context.Context) {
			v4 := &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "battle-winner-predictor-4"}}
			for user, c := range map[string]client.Client{"bob": bob, "alice": alice} {
				err := c.Delete(ctx, v4, client.DryRunAll)
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
				Expect(err).To(MatchError(ContainSubstring("user " + user + " may not delete ModelVersion battle-winner-predictor-4, " +
					"which serves (Production or the candidate of a canary), in namespace " + governed + ": the ConfigMap " +
					"podium-governance there has what serves retired by a request, so that the record says who retired it; " +
					"an approver " + whoMayApprove + " archives it first")))
			}
			v3 := &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "battle-winner-predictor-3"}}
			Expect(bob.Delete(ctx, v3, client.DryRunAll)).To(Succeed(), "an Archived version is not governed")

			model := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "battle-winner-predictor"}}
			err := bob.Delete(ctx, model)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(MatchRegexp(`user bob may not delete RegisteredModel battle-winner-predictor, ` +
				`whose status holds \d+ history entries`)))
			Expect(alice.Delete(ctx, model, client.DryRunAll)).To(Succeed(), "an approver may delete a model")
			Expect(productionOf(ctx, governed)).To(BeEquivalentTo(4))
		})

		It("refuses a non-approver's pause and skip annotations, and changes of the gates, the mode or the rollout", func(ctx context.Context) {
			patchModel := func(c client.Client, patch string, opts ...client.PatchOption) error {
				m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: governed, Name: "battle-winner-predictor"}}
				return c.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(patch)), opts...)
			}
			for patch, says := range map[string]string{
				`{"metadata":{"annotations":{"ml.podium.dev/pause-rollout":"true"}}}`:      "set, change or remove the annotation ml.podium.dev/pause-rollout",
				`{"spec":{"promotion":{"gates":[{"metric":"test_accuracy","min":0.5}]}}}`:  "change spec.promotion or spec.serving.rollout of RegisteredModel battle-winner-predictor",
				`{"spec":{"promotion":{"requireImprovement":{"metric":"test_accuracy"}}}}`: "change the gates, the mode or the rollout",
			} {
				err := patchModel(bob, patch)
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", patch, err)
				Expect(err).To(MatchError(ContainSubstring("user bob may not " + strings.SplitN(says, " ", 2)[0])))
				Expect(err).To(MatchError(ContainSubstring(says)))
				Expect(patchModel(alice, patch, client.DryRunAll)).To(Succeed(), "an approver may: %s", patch)
			}
			Expect(patchModel(bob, `{"spec":{"description":"the seed's model"}}`, client.DryRunAll)).To(Succeed(),
				"the rest of the model is not governed")
			err := patchAs(ctx, bob, governed, "battle-winner-predictor-3", `{"metadata":{"annotations":{"ml.podium.dev/skip-rollout":"true"}}}`)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("user bob may not set, change or remove the annotation ml.podium.dev/skip-rollout")))
		})

		It("takes a Production request made again with a new stageRequestID as one write: refused whole, or acted on once", func(ctx context.Context) {
			// Version 3 still requests Production, which was acted on before version 4 replaced it.
			name := "battle-winner-predictor-3"
			before := getVersion(ctx, governed, name)
			Expect(before.Spec.Stage).To(Equal(mlv1.StageProduction))
			Expect(before.Status.Stage).To(Equal(mlv1.StageArchived))
			again := `{"spec":{"stage":"Production","stageRequestID":"20261207T010000Z-0001"}}`
			err := patchAs(ctx, bob, governed, name, again)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("user bob may not request spec.stage: Production")))
			Expect(getVersion(ctx, governed, name).ResourceVersion).To(Equal(before.ResourceVersion), "a refusal changes nothing")

			Expect(patchAs(ctx, dave, governed, name, again)).To(Succeed())
			Expect(getVersion(ctx, governed, name).Annotations).To(HaveKeyWithValue(mlv1.AnnotationStageRequestedBy, "dave"))
			Eventually(func() int64 { return productionOf(ctx, governed) }).Should(BeEquivalentTo(3))
			history := historyBy(ctx, governed)
			Expect(history[len(history)-2:]).To(HaveExactElements("4 Production -> Archived by dave", "3 Archived -> Production by dave"))

			By("writing the same request again, as a sync would, and removing its ID: neither is a request")
			Expect(patchAs(ctx, alice, governed, name, again)).To(Succeed())
			Expect(patchAs(ctx, bob, governed, name, `{"spec":{"stageRequestID":null}}`)).To(Succeed())
			Consistently(func(g Gomega) {
				g.Expect(historyBy(ctx, governed)).To(HaveLen(len(history)))
				g.Expect(getVersion(ctx, governed, name).Annotations).To(HaveKeyWithValue(mlv1.AnnotationStageRequestedBy, "dave"))
			}).WithTimeout(2 * time.Second).Should(Succeed())
		})
		It("has a model with history deleted by an approver who marked it, and records who", func(ctx context.Context) {
			// Bob and alice may delete models and versions here (the deleter role above).
			model := getModel(ctx, governed, "battle-winner-predictor")
			err := alice.Delete(ctx, model)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err).To(MatchError(ContainSubstring("user alice may not delete RegisteredModel battle-winner-predictor " +
				"without marking it for deletion first, in namespace " + governed + ": the ConfigMap podium-governance " +
				"there has the record of a deletion name who deleted the model; run kubectl podium delete " +
				"battle-winner-predictor, which marks it as yours and deletes it")))

			Expect(patchModelAs(ctx, bob, governed, `{"metadata":{"annotations":{"ml.podium.dev/delete-requested":"1"}}}`)).To(Succeed())
			Expect(alice.Delete(ctx, model)).To(MatchError(ContainSubstring("user bob marked it for deletion")))
			Expect(patchModelAs(ctx, alice, governed, `{"metadata":{"annotations":{"ml.podium.dev/delete-requested":"2"}}}`)).To(Succeed())
			Expect(bob.Delete(ctx, model)).To(MatchError(ContainSubstring("user bob may not delete RegisteredModel")))
			Expect(productionOf(ctx, governed)).To(BeEquivalentTo(3))

			Expect(alice.Delete(ctx, model)).To(Succeed())
			Eventually(func() string { return string(lastRecord(ctx, governed).Transition.Reason) }).
				Should(Equal(string(mlv1.ReasonModelDeleted)))
			deleted := lastRecord(ctx, governed).Transition
			Expect(deleted.Version).To(BeEquivalentTo(3))
			Expect(deleted.From).To(Equal(mlv1.StageProduction))
			Expect(deleted.By).To(Equal("alice"))
		})
	})

	It("hold the manager's readiness until they stamp a ModelVersion, and store nothing", func(ctx context.Context) {
		probe := func(ns string) *admission.GovernanceProbe {
			return &admission.GovernanceProbe{Client: k8sClient, Namespace: ns}
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/readyz", nil)
		ungoverned := newNamespace(ctx)
		Expect(probe(ungoverned).Check(req)).To(MatchError(ContainSubstring(
			"admits ModelVersions in namespace " + ungoverned + " without the governance policies' ml.podium.dev/registered-by stamp")))
		ready := probe(governedNamespace(ctx))
		Eventually(ready.Check).WithArguments(req).Should(Succeed())
		Expect(ready.Check(req)).To(Succeed(), "a probe that passed stays passed")
		var versions mlv1.ModelVersionList
		Expect(k8sClient.List(ctx, &versions, client.InNamespace(ready.Namespace))).To(Succeed())
		Expect(versions.Items).To(BeEmpty(), "the probe's dry run stored a version")
	})
})

// governedNamespace creates a namespace of its own, to which the governance policies are bound.
func governedNamespace(ctx context.Context) string {
	ns := newNamespace(ctx)
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"labels":{%q:"true"}}}`, governedLabel))
	Expect(k8sClient.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, patch)).To(Succeed())
	return ns
}

// scopeToGoverned binds a binding of config/governance to the governed namespaces only.
func scopeToGoverned(obj client.Object) {
	match := &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{governedLabel: "true"}}}
	switch b := obj.(type) {
	case *admissionv1.ValidatingAdmissionPolicyBinding:
		b.Spec.MatchResources = match
	case *admissionv1.MutatingAdmissionPolicyBinding:
		b.Spec.MatchResources = match
	}
}

func registeredBy(user string) versionOption {
	return func(v *mlv1.ModelVersion) {
		v.Annotations = map[string]string{mlv1.AnnotationRegisteredBy: user}
	}
}

// patchAs merge-patches a version as the client's user, as kubectl patch --type=merge does.
func patchAs(ctx context.Context, c client.Client, ns, name, patch string, opts ...client.PatchOption) error {
	v := &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	return c.Patch(ctx, v, client.RawPatch(types.MergePatchType, []byte(patch)), opts...)
}

// patchModelAs merge-patches the namespace's model as the client's user.
func patchModelAs(ctx context.Context, c client.Client, ns, patch string, opts ...client.PatchOption) error {
	m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "battle-winner-predictor"}}
	return c.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(patch)), opts...)
}

// lastRecord is the namespace's StageRecord of the highest sequence.
func lastRecord(ctx context.Context, ns string) mlv1.StageRecord {
	GinkgoHelper()
	var list mlv1.StageRecordList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	Expect(list.Items).NotTo(BeEmpty())
	mlv1.SortStageRecords(list.Items)
	return list.Items[len(list.Items)-1]
}

// historyBy renders the model's history as "version from -> to by who".
func historyBy(ctx context.Context, ns string) []string {
	history := getModel(ctx, ns, "battle-winner-predictor").Status.History
	out := make([]string, 0, len(history))
	for _, h := range history {
		from := ""
		if h.From != "" {
			from = string(h.From) + " "
		}
		out = append(out, fmt.Sprintf("%d %s-> %s by %s", h.Version, from, h.To, h.By))
	}
	return out
}
