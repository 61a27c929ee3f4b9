package controller_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// validCanary is a canary rollout the API server accepts, for the entries to break one rule each.
func validCanary(m *mlv1.RegisteredModel) {
	served(m)
	m.Spec.Serving.Rollout = &mlv1.Rollout{
		Strategy: mlv1.RolloutCanary,
		Steps: []mlv1.RolloutStep{{Weight: 10, Duration: metav1.Duration{Duration: time.Minute}},
			{Weight: 50, Duration: metav1.Duration{Duration: time.Minute}}, {Weight: 100, Duration: metav1.Duration{Duration: time.Minute}}},
		Analysis: &mlv1.Analysis{
			Prometheus: mlv1.Prometheus{Address: "http://prometheus.monitoring:9090"},
			Metrics:    []mlv1.AnalysisMetric{{Name: "error-rate", Query: "vector(0)", Max: numPtr("0.01")}},
		},
		Bake: &metav1.Duration{Duration: time.Minute},
	}
}

var _ = Describe("Validation of spec.serving.rollout at apply time", func() {
	It("accepts a canary with online gates and a bake, and defaults the interval and limits", func(ctx context.Context) {
		ns := newNamespace(ctx)
		m := seedModel(ns, validCanary)
		create(ctx, m)
		a := getModel(ctx, ns, m.Name).Spec.Serving.Rollout.Analysis
		Expect(a.Interval.Duration).To(Equal(30 * time.Second))
		Expect(a.InconclusiveLimit).To(Equal(int32(10)))
	})

	DescribeTable("a rollout is rejected",
		func(ctx context.Context, mutate func(*mlv1.Rollout), message string) {
			m := seedModel(newNamespace(ctx), validCanary)
			mutate(m.Spec.Serving.Rollout)
			err := k8sClient.Create(ctx, m)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("a Canary without steps", func(r *mlv1.Rollout) { r.Steps = nil },
			"a Canary rollout needs steps, for example [{weight: 10, duration: 2m}, {weight: 50, duration: 5m}]"),
		Entry("a weight above 100", func(r *mlv1.Rollout) { r.Steps[0].Weight = 101 },
			"should be less than or equal to 100"),
		Entry("a weight of 0", func(r *mlv1.Rollout) { r.Steps[0].Weight = 0 },
			"should be greater than or equal to 1"),
		Entry("a bake without analysis", func(r *mlv1.Rollout) { r.Analysis = nil },
			"bake keeps the analysis running after the promotion: it needs spec.serving.rollout.analysis"),
		Entry("a Prometheus address that is not a URL", func(r *mlv1.Rollout) { r.Analysis.Prometheus.Address = "prometheus:9090" },
			"the Prometheus address must be an http:// or https:// URL"),
		Entry("a Prometheus address with a space in its host", func(r *mlv1.Rollout) {
			r.Analysis.Prometheus.Address = "http://prometheus monitoring:9090"
		}, "the Prometheus address must be an http:// or https:// URL with a host"),
		Entry("a Prometheus address without a host", func(r *mlv1.Rollout) { r.Analysis.Prometheus.Address = "http://" },
			"the Prometheus address must be an http:// or https:// URL with a host"),
		Entry("a Prometheus address of another scheme", func(r *mlv1.Rollout) { r.Analysis.Prometheus.Address = "file:///etc/passwd" },
			"the Prometheus address must be an http:// or https:// URL with a host"),
		Entry("a metric without a bound", func(r *mlv1.Rollout) { r.Analysis.Metrics[0].Max = nil },
			"an analysis metric needs min, max or both"),
		Entry("a metric whose min is above its max", func(r *mlv1.Rollout) { r.Analysis.Metrics[0].Min = numPtr("0.5") },
			"an analysis metric's min must not be greater than its max"),
		Entry("analysis without metrics", func(r *mlv1.Rollout) { r.Analysis.Metrics = nil },
			"spec.serving.rollout.analysis.metrics"),
		Entry("an unknown strategy", func(r *mlv1.Rollout) { r.Strategy = "BlueGreen" },
			`supported values: "Replace", "Canary"`),
		Entry("weights that do not increase", func(r *mlv1.Rollout) {
			r.Steps = []mlv1.RolloutStep{{Weight: 50, Duration: metav1.Duration{Duration: time.Minute}},
				{Weight: 10, Duration: metav1.Duration{Duration: time.Minute}}}
		}, "the steps' weights must increase from one step to the next, such as 10, 50, 100"),
		Entry("two steps of the same weight", func(r *mlv1.Rollout) {
			r.Steps = []mlv1.RolloutStep{{Weight: 50, Duration: metav1.Duration{Duration: time.Minute}},
				{Weight: 50, Duration: metav1.Duration{Duration: time.Minute}}}
		}, "the steps' weights must increase from one step to the next"),
		Entry("a step of no time", func(r *mlv1.Rollout) { r.Steps[0].Duration = metav1.Duration{} },
			"a step's duration must be more than 0, such as 2m"),
		Entry("an analysis interval under a second", func(r *mlv1.Rollout) {
			r.Analysis.Interval = metav1.Duration{Duration: 100 * time.Millisecond}
		}, "the analysis interval must be at least 1s, such as 30s"),
		Entry("a bake of no time", func(r *mlv1.Rollout) { r.Bake = &metav1.Duration{} },
			"bake must be more than 0, such as 10m"),
		Entry("an empty query", func(r *mlv1.Rollout) { r.Analysis.Metrics[0].Query = "" },
			"spec.serving.rollout.analysis.metrics[0].query"),
	)

	It("refuses a Canary without spec.serving.replicas: the steps share the replicas", func(ctx context.Context) {
		m := seedModel(newNamespace(ctx), validCanary)
		m.Spec.Serving.Replicas = nil
		err := k8sClient.Create(ctx, m)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("a Canary rollout shares the pods between the versions by replica counts: set spec.serving.replicas"))
	})
})
