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
	const ns = "e2e-promotion"

	It("promotes the seed's versions by the gates and rolls back with one patch", func() {
		managerAlive()
		createNamespace(ns)
		promoteSeed(ns)

		By("reading the table a person sees")
		table := mustKubectl("get", "modelversions", "-n", ns)
		Expect(table).To(MatchRegexp(
			`battle-winner-predictor-4\s+battle-winner-predictor\s+4\s+Production\s+test_accuracy=0.8723`))
		// The sample serves: Ready once the prediction Deployment runs version 4.
		eventuallyKubectl("get", "registeredmodels", "-n", ns).
			Should(MatchRegexp(`battle-winner-predictor\s+4\s+4\s+4\s+True`), "PRODUCTION, LATEST, SERVING, READY")

		rollBackSeed(ns)

		By("finding the Events a person reads in kubectl describe")
		eventuallyKubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name="+seedModel+"-3",
			"-o", "jsonpath={range .items[*]}{.reason} {end}").Should(ContainSubstring("Rollback"))
	})
})

// seedModel is the model of config/samples.
const seedModel = "battle-winner-predictor"

// seedStage polls the stage of version n of the seed model in ns.
func seedStage(ns, n string) AsyncAssertion {
	GinkgoHelper()
	return eventuallyKubectl("get", "modelversion", seedModel+"-"+n, "-n", ns, "-o", "jsonpath={.status.stage}")
}

// promoteSeed applies config/samples to ns one by one and waits for each decision: version 2
// fails the gates (None), version 3 then version 4 become Production, version 3 is Archived.
func promoteSeed(ns string) {
	GinkgoHelper()
	sample := func(name string) string { return filepath.Join(repoRoot, "config", "samples", name) }
	By("applying the seed's model and versions 2, 3 and 4")
	mustKubectl("apply", "-n", ns, "-f", sample("ml_v1alpha1_registeredmodel.yaml"))
	mustKubectl("apply", "-n", ns, "-f", sample("ml_v1alpha1_modelversion_2.yaml"))
	seedStage(ns, "2").Should(Equal("None"))
	Expect(mustKubectl("get", "modelversion", seedModel+"-2", "-n", ns, "-o",
		`jsonpath={.status.conditions[?(@.type=="GatesPassed")].message}`)).
		To(Equal("test_accuracy 0.8203 < 0.85; overfitting 0.0753 > 0.05"))

	mustKubectl("apply", "-n", ns, "-f", sample("ml_v1alpha1_modelversion_3.yaml"))
	seedStage(ns, "3").Should(Equal("Production"))
	mustKubectl("apply", "-n", ns, "-f", sample("ml_v1alpha1_modelversion_4.yaml"))
	seedStage(ns, "4").Should(Equal("Production"))
	seedStage(ns, "3").Should(Equal("Archived"))
}

// rollBackSeed rolls the seed model in ns back to version 3 with kubectl patch and waits for
// the stages and the history to show it.
func rollBackSeed(ns string) {
	GinkgoHelper()
	By("rolling back with kubectl patch")
	mustKubectl("patch", "modelversion", seedModel+"-3", "-n", ns, "--type=merge", "-p", `{"spec":{"stage":"Production"}}`)
	seedStage(ns, "3").Should(Equal("Production"))
	seedStage(ns, "4").Should(Equal("Archived"))
	eventuallyKubectl("get", "registeredmodel", seedModel, "-n", ns, "-o",
		`jsonpath={range .status.history[*]}{.version}:{.reason} {end}`).
		Should(Equal("3:GatesPassed 3:Superseded 4:GatesPassed 4:RolledBack 3:Rollback"))
}
