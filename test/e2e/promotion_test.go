//go:build e2e

package e2e

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
)

// The seed's workflow as a user types it: kubectl apply of the samples, then a rollback with
// kubectl patch.
var _ = Describe("Promotion with kubectl", func() {
	const ns, model = "e2e-promotion", "battle-winner-predictor"
	samples := func(name string) string { return filepath.Join(repoRoot, "config", "samples", name) }
	stage := func(version string) AsyncAssertion {
		return eventuallyKubectl("get", "modelversion", model+"-"+version, "-n", ns, "-o", "jsonpath={.status.stage}")
	}

	It("promotes the seed's versions by the gates and rolls back with one patch", func() {
		managerAlive()
		createNamespace(ns)
		mustKubectl("apply", "-n", ns, "-f", samples("ml_v1alpha1_registeredmodel.yaml"))
		mustKubectl("apply", "-n", ns, "-f", samples("ml_v1alpha1_modelversion_2.yaml"))
		stage("2").Should(Equal("None"))
		Expect(mustKubectl("get", "modelversion", model+"-2", "-n", ns, "-o",
			`jsonpath={.status.conditions[?(@.type=="GatesPassed")].message}`)).
			To(Equal("test_accuracy 0.8203 < 0.85; overfitting 0.0753 > 0.05"))

		mustKubectl("apply", "-n", ns, "-f", samples("ml_v1alpha1_modelversion_3.yaml"))
		stage("3").Should(Equal("Production"))
		mustKubectl("apply", "-n", ns, "-f", samples("ml_v1alpha1_modelversion_4.yaml"))
		stage("4").Should(Equal("Production"))
		stage("3").Should(Equal("Archived"))

		By("reading the table a person sees")
		table := mustKubectl("get", "modelversions", "-n", ns)
		Expect(table).To(MatchRegexp(`battle-winner-predictor-4\s+battle-winner-predictor\s+4\s+Production\s+test_accuracy=0.8723`))
		Expect(mustKubectl("get", "registeredmodels", "-n", ns)).
			To(MatchRegexp(`battle-winner-predictor\s+4\s+4\s+True`))

		By("rolling back with kubectl patch")
		mustKubectl("patch", "modelversion", model+"-3", "-n", ns, "--type=merge", "-p", `{"spec":{"stage":"Production"}}`)
		stage("3").Should(Equal("Production"))
		stage("4").Should(Equal("Archived"))
		eventuallyKubectl("get", "registeredmodel", model, "-n", ns, "-o",
			`jsonpath={range .status.history[*]}{.version}:{.reason} {end}`).
			Should(Equal("3:GatesPassed 3:Superseded 4:GatesPassed 4:RolledBack 3:Rollback"))

		By("finding the Events a person reads in kubectl describe")
		eventuallyKubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name="+model+"-3",
			"-o", "jsonpath={range .items[*]}{.reason} {end}").Should(ContainSubstring("Rollback"))
	})
})
