package controller_test

import (
	"context"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/testenv"
)

// The admission policy of config/policy, as config/default and the chart install it: a
// RegisteredModel's spec.serving only from those who may create Deployments in its namespace.
var _ = Describe("The serving admission policy", Ordered, func() {
	var (
		ns string
		// modeler may write RegisteredModels; deployer may also create Deployments.
		modeler, deployer client.Client
	)

	BeforeAll(func(ctx context.Context) {
		for _, obj := range configObjects(filepath.Join("..", "..", "config", "policy")) {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, obj)).To(Succeed()) })
		}

		ns = newNamespace(ctx)
		grant(ctx, ns, "modeler", rbacv1.PolicyRule{APIGroups: []string{mlv1.GroupVersion.Group},
			Resources: []string{"registeredmodels"}, Verbs: []string{"get", "create", "update", "patch"}})
		grant(ctx, ns, "deployer", rbacv1.PolicyRule{APIGroups: []string{mlv1.GroupVersion.Group},
			Resources: []string{"registeredmodels"}, Verbs: []string{"get", "create", "update", "patch"}},
			rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create"}})
		modeler, deployer = clientAs("modeler", "ml-team"), clientAs("deployer", "ml-team")
	})

	refusal := func() string {
		return "user modeler may not create Deployments in namespace " + ns + ", and a RegisteredModel with " +
			"spec.serving makes the operator create one from spec.serving.template: ask for the right to create " +
			"Deployments in " + ns + ", or leave spec.serving out"
	}

	It("refuses spec.serving from a user who may not create Deployments, and says what to ask for", func(ctx context.Context) {
		By("waiting for the API server to enforce the policy, with dry runs")
		Eventually(func() error {
			return modeler.Create(ctx, seedModel(ns, served), client.DryRunAll)
		}).Should(MatchError(ContainSubstring(refusal())))

		err := modeler.Create(ctx, seedModel(ns, served))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring(refusal())))
	})

	It("admits a model without spec.serving from that user, and refuses adding spec.serving later", func(ctx context.Context) {
		model := seedModel(ns, func(m *mlv1.RegisteredModel) { m.Name = "unserved" })
		Expect(modeler.Create(ctx, model)).To(Succeed())

		base := model.DeepCopy()
		served(model)
		Expect(modeler.Patch(ctx, model, client.MergeFrom(base))).To(MatchError(ContainSubstring(refusal())))

		model = getModel(ctx, ns, model.Name)
		Expect(model.Spec.Serving).To(BeNil())
		base = model.DeepCopy()
		model.Spec.Description = "Predicts the winner, without serving"
		Expect(modeler.Patch(ctx, model, client.MergeFrom(base))).To(Succeed())
	})

	It("admits spec.serving, with any service account of the namespace, from a user who may create Deployments",
		func(ctx context.Context) {
			model := seedModel(ns, served, func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.Template.Spec.ServiceAccountName = "predictor"
			})
			Expect(deployer.Create(ctx, model)).To(Succeed())
		})

	It("lets the first user change the rest of a served model, but not its spec.serving", func(ctx context.Context) {
		model := getModel(ctx, ns, "battle-winner-predictor")
		base := model.DeepCopy()
		model.Spec.Description = "Predicts the winner of a battle, served"
		Expect(modeler.Patch(ctx, model, client.MergeFrom(base))).To(Succeed())

		base = model.DeepCopy()
		model.Spec.Serving.Replicas = new(int32(5))
		Expect(modeler.Patch(ctx, model, client.MergeFrom(base))).To(MatchError(ContainSubstring(refusal())))
		Expect(*getModel(ctx, ns, model.Name).Spec.Serving.Replicas).To(BeEquivalentTo(2))
	})
})

// grant binds a Role with these rules, in the namespace, to the user.
func grant(ctx context.Context, ns, user string, rules ...rbacv1.PolicyRule) {
	GinkgoHelper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	create(ctx, role, binding)
}

// clientAs is a client that impersonates the user, as a member of the groups.
func clientAs(user string, groups ...string) client.Client {
	GinkgoHelper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cl, err := client.New(c, client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())
	return cl
}

// configObjects decodes the objects a kustomize directory of config/ lists as its resources, as
// they are before config/default prefixes their names.
func configObjects(dir string) []client.Object {
	GinkgoHelper()
	objs, err := testenv.ConfigObjects(dir, testScheme)
	Expect(err).NotTo(HaveOccurred())
	return objs
}

// configObject decodes the one object of a YAML file of config/.
func configObject(path string) client.Object {
	GinkgoHelper()
	obj, err := testenv.ConfigObject(path, testScheme)
	Expect(err).NotTo(HaveOccurred())
	return obj
}
