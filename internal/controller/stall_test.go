package controller_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/testnet"
)

// stallingServer is a Prometheus behind a stuck proxy: it accepts connections and never answers.
func stallingServer() string { return "http://" + testnet.SilentListener(GinkgoT()) }

// The reconcile workers are as many as the canaries below. Each canary's eight online gates ask
// a Prometheus that never answers: measured inside the reconcile, one after the other, each held
// a worker 80 s per interval, and an unrelated model waited for one of them.
var _ = Describe("A stalled Prometheus", func() {
	It("never delays the promotion of another model", func(ctx context.Context) {
		address := stallingServer()
		for i := range 8 {
			ns := newNamespace(ctx)
			model := seedModel(ns, func(m *mlv1.RegisteredModel) {
				served(m)
				m.Spec.Serving.Replicas = new(int32(2))
				m.Spec.Serving.Rollout = &mlv1.Rollout{
					Strategy: mlv1.RolloutCanary,
					Steps:    []mlv1.RolloutStep{{Weight: 50, Duration: metav1.Duration{Duration: time.Minute}}},
					Analysis: &mlv1.Analysis{
						Prometheus:        mlv1.Prometheus{Address: address},
						Interval:          metav1.Duration{Duration: time.Second},
						InconclusiveLimit: 100,
					},
				}
				for j := range 8 {
					m.Spec.Serving.Rollout.Analysis.Metrics = append(m.Spec.Serving.Rollout.Analysis.Metrics, mlv1.AnalysisMetric{
						Name: fmt.Sprintf("m%d", j), Query: fmt.Sprintf(`up{job="%d"}`, j), Max: numPtr("1")})
				}
			})
			create(ctx, model, seedVersion(ns, 1, "0.8723"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
			}).WithTimeout(30*time.Second).Should(Succeed(), "canary %d's first version", i)
			create(ctx, seedVersion(ns, 2, "0.8901"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(rolloutOf(ctx, ns).StepStartTime).NotTo(BeNil(), "the step begins: the analysis is due")
			}).WithTimeout(30*time.Second).Should(Succeed(), "canary %d's step", i)
		}

		ns := newNamespace(ctx)
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		start := time.Now()
		Eventually(func() int64 { return productionOf(ctx, ns) }).WithTimeout(20 * time.Second).Should(BeEquivalentTo(3))
		GinkgoWriter.Printf("an unrelated model was promoted %s after its version was registered\n", time.Since(start))
	})
})
