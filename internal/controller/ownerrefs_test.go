package controller_test

import (
	"context"
	"path/filepath"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/serving"
	"github.com/podium-dev/podium/internal/testenv"
)

// The suite's API server runs OwnerReferencesPermissionEnforcement (internal/testenv), as
// OpenShift does: the prediction Deployment's owner reference blocks the model's deletion, which
// needs update on registeredmodels/finalizers. These specs act as a ServiceAccount bound to the
// manager's ClusterRole from config/rbac/role.yaml, and to nothing else.
var _ = Describe("Owner references under OwnerReferencesPermissionEnforcement", Ordered, Serial, func() {
	var ns string

	BeforeAll(func(ctx context.Context) {
		ns = newNamespace(ctx)
		role := configObject(filepath.Join("..", "..", "config", "rbac", "role.yaml")).(*rbacv1.ClusterRole)
		Expect(role.Rules).To(ContainElement(rbacv1.PolicyRule{APIGroups: []string{mlv1.GroupVersion.Group},
			Resources: []string{"registeredmodels/finalizers"}, Verbs: []string{"update"}}))
		bindClusterRole(ctx, ns, "manager", role.Rules)

		withoutFinalizers := slices.DeleteFunc(slices.Clone(role.Rules), func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.Resources, "registeredmodels/finalizers")
		})
		bindClusterRole(ctx, ns, "manager-without-finalizers", withoutFinalizers)

		create(ctx, seedModel(ns, served))
	})

	// ownedDeployment is what the operator creates: a Deployment whose controller reference to
	// the model has blockOwnerDeletion.
	ownedDeployment := func(ctx context.Context, name string) *appsv1.Deployment {
		model := getModel(ctx, ns, "battle-winner-predictor")
		ref := metav1.NewControllerRef(model, mlv1.GroupVersion.WithKind("RegisteredModel"))
		Expect(*ref.BlockOwnerDeletion).To(BeTrue())
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: []metav1.OwnerReference{*ref}},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "predictor", Image: "predictor"}}},
				},
			},
		}
	}

	It("refuses the owner reference to a role without update on registeredmodels/finalizers", func(ctx context.Context) {
		c := clientAsServiceAccount(ns, "manager-without-finalizers")
		var err error
		Eventually(func() error { // the RBAC authorizer learns the new binding from its informer
			err = c.Create(ctx, ownedDeployment(ctx, "without-finalizers"))
			return err
		}).Should(MatchError(ContainSubstring("cannot set blockOwnerDeletion")))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	})

	It("admits it with the manager's role", func(ctx context.Context) {
		c := clientAsServiceAccount(ns, "manager")
		Eventually(c.Create).WithArguments(ctx, ownedDeployment(ctx, "with-finalizers")).Should(Succeed())
	})

	It("runs the operator with the manager's role only: a served model gets its Deployment and Service", func(ctx context.Context) {
		By("stopping the suite's operator, which acts as an administrator")
		stopMgr()
		DeferCleanup(func() { stopMgr = startManager() })
		stop, err := testenv.Operator{Namespaces: []string{ns}, MissingRetry: time.Second}.
			Start(serviceAccountConfig(ns, "manager"), testScheme)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(stop()).To(Succeed()) })

		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(templateVersion).WithArguments(ctx, ns).Should(Equal("4"))
		d := getDeployment(ctx, ns)
		Expect(d.OwnerReferences).To(ConsistOf(And(HaveField("Name", "battle-winner-predictor"),
			HaveField("BlockOwnerDeletion", HaveValue(BeTrue())))))
		Eventually(k8sClient.Get).WithArguments(ctx, types.NamespacedName{Namespace: ns, Name: predictor},
			&corev1.Service{}).Should(Succeed())
		Eventually(func() mlv1.Stage {
			return getVersion(ctx, ns, "battle-winner-predictor-4").Status.Stage
		}).Should(Equal(mlv1.StageProduction))
		Expect(d.Labels).To(HaveKeyWithValue(serving.LabelManagedBy, "podium"))
	})
})

// bindClusterRole creates a ClusterRole with the rules and binds it, cluster-wide as
// config/default binds the manager's, to the ServiceAccount ns/name; both go when the specs end.
func bindClusterRole(ctx context.Context, ns, name string, rules []rbacv1.PolicyRule) {
	GinkgoHelper()
	create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}, Rules: rules}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}
	for _, obj := range []client.Object{role, binding} {
		create(ctx, obj)
		DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, obj)).To(Succeed()) })
	}
}

// serviceAccountConfig authenticates as the ServiceAccount ns/name would, by impersonation.
func serviceAccountConfig(ns, name string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return c
}

func clientAsServiceAccount(ns, name string) client.Client {
	GinkgoHelper()
	c, err := client.New(serviceAccountConfig(ns, name), client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}
