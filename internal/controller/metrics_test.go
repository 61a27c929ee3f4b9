package controller_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	dto "github.com/prometheus/client_model/go"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// series returns the value of every series of a metric family whose labels include want.
func series(name string, want map[string]string) []float64 {
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	var out []float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, want) {
				out = append(out, value(m))
			}
		}
	}
	return out
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

var _ = Describe("Metrics", func() {
	It("export the Production version, the transitions and the gate evaluations", func(ctx context.Context) {
		ns := newNamespace(ctx)
		model := map[string]string{"namespace": ns, "model": "battle-winner-predictor"}
		create(ctx, seedModel(ns), seedVersion(ns, 2, "0.8203"), seedVersion(ns, 3, "0.8512"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production"))
		create(ctx, seedVersion(ns, 4, "0.8723"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Archived 4=Production"))

		// The gauge is set after the reconcile's writes, the version's status among them.
		Eventually(series).WithArguments("podium_production_version_info", map[string]string{"namespace": ns, "version": "4"}).
			Should(Equal([]float64{1}))
		Expect(series("podium_production_version_info", model)).To(Equal([]float64{1}), "one series per model")
		Expect(series("podium_stage_transitions_total", map[string]string{"namespace": ns, "to": "Archived", "reason": "Superseded"})).
			To(Equal([]float64{1}))
		// A status write that the cache had not seen yet may be repeated, and counts again.
		Expect(series("podium_gate_evaluations_total", map[string]string{"namespace": ns, "result": "failed"})).
			To(ConsistOf(BeNumerically(">=", 1)))
		Expect(series("podium_gate_evaluations_total", map[string]string{"namespace": ns, "result": "passed"})).
			To(ConsistOf(BeNumerically(">=", 2)), "versions 3 and 4 passed")
	})
})
