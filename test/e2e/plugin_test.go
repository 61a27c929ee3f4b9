//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
)

// The plugin spec runs the real `kubectl podium`: the pinned kubectl finds bin/kubectl-podium on
// PATH, against the kwok cluster and the manager that BeforeSuite started. It plays the seed's
// story: three training runs register versions, the best passing one becomes Production, and a
// person rolls back.
var _ = Describe("kubectl podium", func() {
	const ns = "e2e-plugin"
	const model = "battle-winner-predictor"

	// podium runs `kubectl podium ARGS -n ns` and returns its trimmed stdout.
	podium := func(args ...string) (string, error) {
		env := pluginEnv()
		args = append(append([]string{"podium"}, args...), "-n", ns)
		return run(context.Background(), env, "", filepath.Join(kubeBinDir, "kubectl"), args...)
	}
	mustPodium := func(args ...string) string {
		GinkgoHelper()
		out, err := podium(args...)
		Expect(err).NotTo(HaveOccurred())
		return out
	}
	// register registers version n with the metrics its training run reported.
	register := func(n int, accuracy string) {
		GinkgoHelper()
		Expect(mustPodium("register", model, "--version", fmt.Sprint(n),
			"--uri", fmt.Sprintf("s3://ml-artifacts/battle-winner/%d/", n),
			"--metric", "test_accuracy="+accuracy, "--metric", "overfitting=0.0233",
			"--description", "RandomForest - Accuracy: "+accuracy)).
			To(Equal(fmt.Sprintf("Registered version %d of %s as ModelVersion %s-%d in namespace %s", n, model, model, n, ns)))
	}
	// compareShows waits until compare marks version n Production.
	compareShows := func(n int) {
		GinkgoHelper()
		Eventually(func(g Gomega) string {
			out, err := podium("compare", model)
			g.Expect(err).NotTo(HaveOccurred())
			return out
		}).Should(MatchRegexp(`(?m)^\*%d\s+Production\s`, n))
	}

	It("registers the seed's versions, compares them, rolls back and shows the history", func() {
		managerAlive()
		Expect(filepath.Join(podiumBinDir, "kubectl-podium")).To(BeAnExistingFile(), "build it with 'make build'")
		createNamespace(ns)
		mustApply(fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: RegisteredModel
metadata:
  name: %s
  namespace: %s
spec:
  description: Predicts the winner of a battle
  promotion:
    mode: Automatic
    gates:
    - metric: test_accuracy
      min: 0.85
`, model, ns))

		By("registering v2, which fails the gate, then v3 and v4, which pass")
		register(2, "0.8203")
		register(3, "0.8512")
		compareShows(3)
		register(4, "0.8723")
		compareShows(4)
		table := mustPodium("compare", model)
		Expect(table).To(MatchRegexp(`(?m)^2\s+None\s+0\.0233\s+0\.8203\s+fail: test_accuracy 0\.8203 < 0\.85\s`))
		Expect(table).To(MatchRegexp(`(?m)^3\s+Archived\s+0\.0233\s+0\.8512\s+1/1\s`))

		By("rolling back to the previous Production version")
		Expect(mustPodium("rollback", model)).To(Equal("Version 3 of battle-winner-predictor is Production"))
		Expect(mustPodium("compare", model)).To(MatchRegexp(`(?m)^\*3\s+Production\s`))
		Expect(mustKubectl("get", "modelversion", model+"-4", "-n", ns, "-o", "jsonpath={.status.stage}")).
			To(Equal("Archived"))

		By("reading the rollback in the history")
		history := strings.Split(mustPodium("history", model), "\n")
		// BY is the requester while the chart spec's governance policies are installed, - otherwise.
		Expect(history[len(history)-1]).To(MatchRegexp(
			`^\S+\s+3\s+Archived\s+Production\s+Rollback\s+\S+\s+Rolled back from version 4 by a spec.stage: Production request$`))
		Expect(history[len(history)-2]).To(MatchRegexp(
			`^\S+\s+4\s+Production\s+Archived\s+RolledBack\s+\S+\s+Rolled back to version 3$`))

		By("failing with one clear message and a non-zero exit code for an unknown model")
		_, err := podium("compare", "nope")
		var exit *exec.ExitError
		Expect(errors.As(err, &exit)).To(BeTrue(), "kubectl podium compare nope succeeded")
		Expect(exit.ExitCode()).To(Equal(1))
		Expect(strings.Count(err.Error(), "not found")).To(Equal(1), "the error is printed once: %v", err)
		Expect(err.Error()).To(HaveSuffix(fmt.Sprintf("error: RegisteredModel nope not found in namespace %s; "+
			"list them with kubectl get registeredmodels -n %s\n", ns, ns)))
	})
})
