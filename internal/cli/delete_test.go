package cli

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var _ = Describe("delete", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("deletes a model once the operator has recorded its deletion, and the history stays", func(ctx context.Context) {
		stop := seedStory(ctx, ns)
		Expect(getModel(ctx, ns).Finalizers).To(ContainElement(mlv1.FinalizerStageRecords))

		By("deleting it while no operator runs: the model waits, Terminating, for its record")
		stop()
		r := podium(ctx, ns, "delete", seed, "--timeout", "2s")
		Expect(r.err).To(MatchError(ContainSubstring("RegisteredModel " + seed + " is being deleted, but the operator has " +
			"not recorded its deletion within 2s: is it running?")))
		model := getModel(ctx, ns)
		Expect(model.DeletionTimestamp).NotTo(BeNil())
		Expect(model.Annotations).To(HaveKey(mlv1.AnnotationDeleteRequested))

		By("starting the operator again: it records the deletion, and the model goes")
		startOperator(ns)
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: seed}, &mlv1.RegisteredModel{})
		}).Should(MatchError(ContainSubstring("not found")))
		out := succeed(ctx, ns, "history", seed)
		Expect(out).To(MatchRegexp(`\n\S+\s+4\s+Production\s+None\s+ModelDeleted\s+-\s+RegisteredModel ` + seed +
			` was deleted; version 4 stopped serving; it was marked for deletion, but without the governance admission policies`))
		Expect(out).To(ContainSubstring("RegisteredModel " + seed + " no longer exists"))
		at := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
		Expect(succeed(ctx, ns, "history", seed, "--at", at)).To(MatchRegexp(`^No version of ` + seed + ` was Production at \S+: ` +
			`version 4 left Production at \S+ \(ModelDeleted, by -\)`))
	})

	It("says what it recorded, and waits for the model to go", func(ctx context.Context) {
		seedStory(ctx, ns)
		r := podium(ctx, ns, "delete", seed)
		Expect(r.err).NotTo(HaveOccurred(), r.stderr)
		Expect(r.stdout).To(Equal("RegisteredModel " + seed + " deleted (recorded as deleted by nobody known: the " +
			"governance admission policies, which stamp who marked it, are not installed); its history stays: " +
			"kubectl podium history " + seed + "\n"))
		// No Eventually: the command returned once the model was gone.
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: seed}, &mlv1.RegisteredModel{})
		Expect(err).To(MatchError(ContainSubstring("not found")))
	})

	It("deletes a model without history, which has nothing to record", func(ctx context.Context) {
		create(ctx, seedModel(ns))
		startOperator(ns)
		Expect(succeed(ctx, ns, "delete", seed)).To(ContainSubstring("it had no history, so nothing is recorded"))
	})

	It("records the deletion of a model whose history left no Production version", func(ctx context.Context) {
		create(ctx, seedModel(ns))
		startOperator(ns)
		registerSeed(ctx, ns, 3, "0.8512")
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))
		v3 := &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: seed + "-3"}}
		Expect(k8sClient.Patch(ctx, v3, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"stage":"Archived"}}`)))).
			To(Succeed())
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Archived"))

		succeed(ctx, ns, "delete", seed)
		Expect(succeed(ctx, ns, "history", seed)).To(MatchRegexp(`\n\S+\s+-\s+-\s+None\s+ModelDeleted\s+-\s+` +
			`RegisteredModel ` + seed + ` was deleted; it had no Production version`))
	})

	It("deletes the model it marked when another write came in between, and not one marked again", func(ctx context.Context) {
		c := &cluster{client: k8sClient, namespace: ns}
		for _, again := range []bool{false, true} {
			create(ctx, seedModel(ns))
			model := getModel(ctx, ns)
			mark := "mine"
			Expect(c.annotateModel(ctx, model, mlv1.AnnotationDeleteRequested, &mark)).To(Succeed())
			marked := model.DeepCopy()
			other := `{"metadata":{"labels":{"team":"ml"}}}` // the resourceVersion moves on
			if again {
				other = `{"metadata":{"annotations":{"ml.podium.dev/delete-requested":"theirs"}}}`
			}
			Expect(k8sClient.Patch(ctx, model, client.RawPatch(types.MergePatchType, []byte(other)))).To(Succeed())

			err := c.deleteMarked(ctx, marked, "RegisteredModel", "kubectl podium delete "+seed)
			if again {
				Expect(err).To(MatchError(ContainSubstring("was marked for deletion again, or replaced, after this " +
					"command marked it, and was not deleted")))
				Expect(getModel(ctx, ns).DeletionTimestamp).To(BeNil())
				Expect(k8sClient.Delete(ctx, model)).To(Succeed())
			} else {
				Expect(err).NotTo(HaveOccurred())
			}
			Eventually(func() error {
				return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: seed}, &mlv1.RegisteredModel{})
			}).Should(MatchError(ContainSubstring("not found")))
		}
	})

	It("deletes the Production version once the operator has retired it, and the previous one serves again",
		func(ctx context.Context) {
			stop := seedStory(ctx, ns)
			Eventually(func() []string { return getVersion(ctx, ns, seed+"-4").Finalizers }).
				Should(ContainElement(mlv1.FinalizerStageRecords))

			By("deleting it while no operator runs: the version waits, Terminating, and still serves")
			stop()
			r := podium(ctx, ns, "delete", seed, "--version", "4", "--timeout", "2s")
			Expect(r.err).To(MatchError(ContainSubstring("ModelVersion " + seed + "-4 (version 4 of " + seed + ") is being " +
				"deleted, but the operator has not retired it within 2s: is it running?")))
			v4 := getVersion(ctx, ns, seed+"-4")
			Expect(v4.DeletionTimestamp).NotTo(BeNil())
			Expect(v4.Annotations).To(HaveKey(mlv1.AnnotationDeleteRequested))
			Expect(*getModel(ctx, ns).Status.ProductionVersion).To(BeEquivalentTo(4))

			By("starting the operator again: it restores version 3, and version 4 goes")
			startOperator(ns)
			Eventually(func() error {
				return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: seed + "-4"}, &mlv1.ModelVersion{})
			}).Should(MatchError(ContainSubstring("not found")))
			Expect(*getModel(ctx, ns).Status.ProductionVersion).To(BeEquivalentTo(3))
			Expect(succeed(ctx, ns, "history", seed)).To(MatchRegexp(`\n\S+\s+4\s+Production\s+Archived\s+Deleted\s+-\s+` +
				`Its ModelVersion was deleted \(by whom: the API server's audit log\); version 3, the previous Production ` +
				`version, was restored`))
			Eventually(func() []string { return getVersion(ctx, ns, seed+"-3").Finalizers }).
				Should(ContainElement(mlv1.FinalizerStageRecords), "the restored version carries the finalizer now")
		})

	It("says what it did to the Production version, and to one that does not serve", func(ctx context.Context) {
		seedStory(ctx, ns)
		r := podium(ctx, ns, "delete", seed, "--version", "4")
		Expect(r.err).NotTo(HaveOccurred(), r.stderr)
		Expect(r.stdout).To(Equal("ModelVersion " + seed + "-4 (version 4 of " + seed + ") deleted (it was Production; " +
			"recorded as deleted by nobody known: the governance admission policies, which stamp who marked it, are not " +
			"installed)\nProduction version of " + seed + ": version 3; kubectl podium history " + seed + " shows why\n"))
		Expect(r.stderr).To(ContainSubstring("Waiting up to"))

		registerSeed(ctx, ns, 5, "0.80") // fails the gate: it never serves
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production 5=None"))
		r = podium(ctx, ns, "delete", seed, "--version", seed+"-5")
		Expect(r.err).NotTo(HaveOccurred(), r.stderr)
		Expect(r.stdout).To(Equal("ModelVersion " + seed + "-5 (version 5 of " + seed + ") deleted (it was not " +
			"Production, so no stage changes)\n"))
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Production"))

		r = podium(ctx, ns, "delete", seed, "--version", "9")
		Expect(r.err).To(MatchError(ContainSubstring("version 9 of RegisteredModel " + seed + " not found")))
	})

	It("changes nothing when the user may not delete the version", func(ctx context.Context) {
		seedStory(ctx, ns)
		create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "editor"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
				Resources: []string{"registeredmodels", "modelversions"}, Verbs: []string{"get", "list", "watch", "patch"}}}},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "editor"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "editor"},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"}}})
		Eventually(func() []string { return getVersion(ctx, ns, seed+"-4").Finalizers }).
			Should(ContainElement(mlv1.FinalizerStageRecords), "the operator's last write of the version")
		before := getVersion(ctx, ns, seed+"-4")
		r := podium(ctx, ns, "--as", "bob", "delete", seed, "--version", "4")
		Expect(r.err).To(MatchError(ContainSubstring("deleting ModelVersion " + seed + "-4 (nothing was changed)")))
		Expect(r.err).To(MatchError(ContainSubstring("forbidden")))
		after := getVersion(ctx, ns, seed+"-4")
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
		Expect(after.Annotations).NotTo(HaveKey(mlv1.AnnotationDeleteRequested))
	})

	It("changes nothing when the user may not delete the model", func(ctx context.Context) {
		seedStory(ctx, ns)
		create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "editor"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
				Resources: []string{"registeredmodels"}, Verbs: []string{"get", "list", "watch", "patch"}}}},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "editor"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "editor"},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"}}})
		before := getModel(ctx, ns)
		r := podium(ctx, ns, "--as", "bob", "delete", seed)
		Expect(r.err).To(MatchError(ContainSubstring("deleting RegisteredModel " + seed + " (nothing was changed)")))
		Expect(r.err).To(MatchError(ContainSubstring("forbidden")))
		after := getModel(ctx, ns)
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
		Expect(after.Annotations).NotTo(HaveKey(mlv1.AnnotationDeleteRequested))
	})
})
