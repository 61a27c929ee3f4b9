package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/serving"
	"github.com/podium-dev/podium/internal/testenv"
)

const (
	route         = "battle-winner-predictor-predictor"
	stableService = "battle-winner-predictor-predictor-stable"
	canaryService = "battle-winner-predictor-predictor-canary"
)

// onGateway routes the canary of canaryOf with the Gateway API, after a shadow phase that copies
// every request to the candidate for two seconds.
func onGateway(m *mlv1.RegisteredModel) {
	m.Spec.Serving.Rollout.Shadow = &mlv1.Shadow{Percent: 100, Duration: metav1.Duration{Duration: 2 * time.Second}}
	m.Spec.Serving.Rollout.Traffic = &mlv1.Traffic{GatewayAPI: &mlv1.GatewayAPITraffic{
		ParentRefs: []mlv1.ParentReference{{Name: "public-gw", Namespace: "gateways"}},
		Hostnames:  []string{"battle.example.com"},
	}}
}

// split describes the model's HTTPRoute as "stable=W canary=W mirror=P", each part only when
// the route has it; "none" when there is no route.
func split(ctx context.Context, ns string) string {
	GinkgoHelper()
	r := &gatewayv1.HTTPRoute{}
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: route}, r)
	if apierrors.IsNotFound(err) {
		return "none"
	}
	Expect(err).NotTo(HaveOccurred())
	Expect(r.Spec.Rules).To(HaveLen(1))
	var parts []string
	for _, b := range r.Spec.Rules[0].BackendRefs {
		Expect(string(b.Name)).To(BeElementOf(stableService, canaryService),
			"the route sends requests only to the Production version's and the candidate's pods")
		Expect(*b.Port).To(Equal(gatewayv1.PortNumber(8000)))
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(string(b.Name), "battle-winner-predictor-predictor-"), *b.Weight))
	}
	for _, f := range r.Spec.Rules[0].Filters {
		Expect(f.Type).To(Equal(gatewayv1.HTTPRouteFilterRequestMirror))
		Expect(string(f.RequestMirror.BackendRef.Name)).To(Equal(canaryService))
		parts = append(parts, fmt.Sprintf("mirror=%d", *f.RequestMirror.Percent))
	}
	return strings.Join(parts, " ")
}

func serviceExists(ctx context.Context, ns, name string) bool {
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.Service{})
	return err == nil
}

// The specs are ordered: the first runs while the API server lacks the Gateway API, the second
// installs its HTTPRoute CRD, which the specs after it need. No other spec of the suite uses it.
var _ = Describe("Traffic on the Gateway API", Ordered, func() {
	It("stalls a model with traffic.gatewayAPI while the cluster lacks the HTTPRoute kind, and serves once it is installed", func(ctx context.Context) {
		ns := newNamespace(ctx)
		e := startAnalysis()
		create(ctx, seedModel(ns, canaryOf(e), onGateway), seedVersion(ns, 1, "0.8723"))
		Eventually(func(g Gomega) {
			stalled := meta.FindStatusCondition(getModel(ctx, ns, "battle-winner-predictor").Status.Conditions, mlv1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(mlv1.ReasonGatewayAPIMissing))
			g.Expect(stalled.Message).To(ContainSubstring("install the Gateway API CRDs (v1.x) or remove spec.serving.rollout.traffic"))
		}).Should(Succeed())
		create(ctx, seedVersion(ns, 2, "0.8901"))
		// The model's status, which names the candidate, is written before the versions' statuses.
		Eventually(func(g Gomega) {
			g.Expect(rolloutOf(ctx, ns).Version).To(Equal(int64(2)))
			g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Staging"))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)), "no canary starts")
			g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Staging"))
		}).WithTimeout(2 * time.Second).Should(Succeed())

		By("installing the HTTPRoute CRD: the operator, started without it, finds it")
		crds, err := testenv.GatewayAPICRDs()
		Expect(err).NotTo(HaveOccurred())
		_, err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join(crds, testenv.HTTPRouteCRD)},
			ErrorIfPathMissing: true})
		Expect(err).NotTo(HaveOccurred())
		e.set(ctx, ns, "2", 0.001)
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			m := getModel(ctx, ns, "battle-winner-predictor")
			g.Expect(meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionStalled)).To(BeNil())
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)), "rollout: %+v", m.Status.Rollout)
			g.Expect(split(ctx, ns)).To(Equal("stable=100"))
		}).WithTimeout(40 * time.Second).Should(Succeed())
	})

	Context("with the HTTPRoute CRD", func() {
		var (
			ns string
			e  *errorRatio
		)
		BeforeEach(func(ctx context.Context) {
			ns = newNamespace(ctx)
			e = startAnalysis()
			e.set(ctx, ns, "2", 0.002)
			create(ctx, seedModel(ns, canaryOf(e), onGateway), seedVersion(ns, 1, "0.8723"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
				g.Expect(split(ctx, ns)).To(Equal("stable=100"), "the route is there before any canary: it is the clients' entry point")
			}).Should(Succeed())
			r := &gatewayv1.HTTPRoute{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: route}, r)).To(Succeed())
			Expect(r.Spec.Hostnames).To(Equal([]gatewayv1.Hostname{"battle.example.com"}))
			Expect(r.Spec.ParentRefs).To(HaveLen(1))
			Expect(string(r.Spec.ParentRefs[0].Name)).To(Equal("public-gw"))
			Expect(string(*r.Spec.ParentRefs[0].Namespace)).To(Equal("gateways"))
			Expect(metav1.IsControlledBy(r, getModel(ctx, ns, "battle-winner-predictor"))).To(BeTrue())
			Expect(r.Annotations).To(HaveKey(serving.AnnotationRendering))
			stable := &corev1.Service{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: stableService}, stable)).To(Succeed())
			Expect(stable.Spec.Selector).To(HaveKeyWithValue(serving.LabelTrack, serving.TrackStable))
			Expect(getDeployment(ctx, ns).Spec.Template.Labels).To(HaveKeyWithValue(serving.LabelTrack, serving.TrackStable))
		})

		It("mirrors requests during the shadow, then gives the candidate each step's exact weight, and promotes it", func(ctx context.Context) {
			create(ctx, seedVersion(ns, 2, "0.8901"))
			seen := map[string]bool{}
			var order []string
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				s, ro := split(ctx, ns), rolloutOf(ctx, ns)
				state := fmt.Sprintf("%s %s canary-pods=%d", ro.Phase, s, replicasOf(ctx, ns, canaryDeployment))
				if !seen[state] {
					seen[state] = true
					order = append(order, state)
				}
				g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)), "the stable track keeps every pod, for 100% on an abort")
				if productionOf(ctx, ns) == 1 {
					g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Staging"))
				}
				g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)))
				g.Expect(s).To(Equal("stable=100"))
				g.Expect(serviceExists(ctx, ns, canaryService)).To(BeFalse(), "the canary Service goes with the canary")
			}).WithTimeout(40 * time.Second).Should(Succeed())
			Expect(order).To(ContainElements(
				"Shadowing stable=100 mirror=100 canary-pods=4",
				"Progressing stable=75 canary=25 canary-pods=1",
				"Progressing stable=50 canary=50 canary-pods=2",
			), "seen: %v", order)
			Expect(order).NotTo(ContainElement(ContainSubstring("Shadowing stable=100 canary=")),
				"a shadow only copies requests")
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
				g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutSucceeded))
			}).Should(Succeed())
		})

		It("returns every request to the stable track when the candidate fails during the shadow", func(ctx context.Context) {
			e.set(ctx, ns, "2", 0.034)
			create(ctx, seedVersion(ns, 2, "0.8901"))
			sawMirror := false
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				sawMirror = sawMirror || split(ctx, ns) == "stable=100 mirror=100"
				g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)))
				g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Archived"))
			}).WithTimeout(30 * time.Second).Should(Succeed())
			Expect(sawMirror).To(BeTrue(), "the candidate was measured on mirrored requests")
			Expect(rolloutOf(ctx, ns).Step).To(BeNil(), "it failed in its shadow phase")
			Eventually(func(g Gomega) {
				g.Expect(split(ctx, ns)).To(Equal("stable=100"))
				g.Expect(serviceExists(ctx, ns, canaryService)).To(BeFalse())
				g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
				g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutAborted))
			}).Should(Succeed())
		})

		It("aborts during a step: the route goes back to the stable track before the canary Service goes", func(ctx context.Context) {
			create(ctx, seedVersion(ns, 2, "0.8901"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(split(ctx, ns)).To(Equal("stable=75 canary=25"))
			}).WithTimeout(20 * time.Second).Should(Succeed())
			// The status reports the route as the reconcile read it, so a reconcile after the one that
			// applied the split reports its weight.
			Eventually(func() int32 { return rolloutOf(ctx, ns).Weight }).Should(Equal(int32(25)), "the route's exact weight")
			requestStage(ctx, ns, "battle-winner-predictor-2", mlv1.StageArchived)
			Eventually(func(g Gomega) {
				g.Expect(split(ctx, ns)).To(Equal("stable=100"))
				g.Expect(serviceExists(ctx, ns, canaryService)).To(BeFalse())
				g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
				g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutAborted))
				g.Expect(productionOf(ctx, ns)).To(Equal(int64(1)))
			}).Should(Succeed())
		})

		It("sends nothing to the canary pods while a newer candidate replaces the one they ran", func(ctx context.Context) {
			create(ctx, seedVersion(ns, 2, "0.8901"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(split(ctx, ns)).To(Equal("stable=75 canary=25"))
			}).WithTimeout(20 * time.Second).Should(Succeed())

			e.set(ctx, ns, "3", 0.001)
			create(ctx, seedVersion(ns, 3, "0.9012"))
			// Nothing plays the Deployment controller now: the canary pods of version 2 stay.
			Eventually(func(g Gomega) {
				g.Expect(rolloutOf(ctx, ns).Version).To(Equal(int64(3)))
				g.Expect(canaryTemplateVersion(ctx, ns)).To(Equal("3"))
			}).Should(Succeed())
			Consistently(func() string { return split(ctx, ns) }).WithTimeout(2*time.Second).Should(Equal("stable=100"),
				"version 2 is no longer the candidate: its pods get no request")
			// the model is written before its versions
			Eventually(stages).WithArguments(ctx, ns).Should(Equal("1=Production 2=Staging 3=Staging"))

			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(split(ctx, ns)).To(Equal("stable=100 mirror=100"))
			}).Should(Succeed(), "the newer candidate begins with its own shadow once its pods serve")
		})

		It("removes the route and its Services when traffic.gatewayAPI is removed", func(ctx context.Context) {
			m := getModel(ctx, ns, "battle-winner-predictor")
			m.Spec.Serving.Rollout.Shadow, m.Spec.Serving.Rollout.Traffic = nil, nil
			Expect(k8sClient.Update(ctx, m)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(split(ctx, ns)).To(Equal("none"))
				g.Expect(serviceExists(ctx, ns, stableService)).To(BeFalse())
				g.Expect(serviceExists(ctx, ns, predictor)).To(BeTrue(), "the model's Service stays")
			}).Should(Succeed())
		})
	})
})

// canaryTemplateVersion is the version the canary Deployment's template serves, "" without one.
func canaryTemplateVersion(ctx context.Context, ns string) string {
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: canaryDeployment}, d); err != nil {
		return ""
	}
	return d.Spec.Template.Annotations[serving.AnnotationVersion]
}
