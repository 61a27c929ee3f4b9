//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck

	"github.com/podium-dev/podium/internal/analysis"
	"github.com/podium-dev/podium/internal/testprometheus"
)

// A canary rollout on a cluster where Deployments really roll out, judged by a real Prometheus.
// kwok's pods serve no traffic, so the error ratio each version would report is set by the test
// on an exporter that Prometheus scrapes, as it would scrape the prediction pods.
var _ = Describe("Canary rollouts", func() {
	const ns, model = "e2e-canary", "canary-demo"
	const stable, canary = model + "-predictor", model + "-predictor-canary"

	version := func(n int) string {
		return fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: ModelVersion
metadata: {name: %[1]s-%[2]d, namespace: %[3]s}
spec:
  registeredModel: %[1]s
  version: %[2]d
  artifact: {uri: "s3://ml-artifacts/battle-winner/%[2]d/"}
  metrics: {test_accuracy: 0.9%[2]d}
`, model, n, ns)
	}
	stageOf := func(n int) AsyncAssertion {
		return eventuallyKubectl("get", "modelversion", fmt.Sprintf("%s-%d", model, n), "-n", ns, "-o", "jsonpath={.status.stage}")
	}
	replicas := func(deployment string) AsyncAssertion {
		return eventuallyKubectl("get", "deployment", deployment, "-n", ns, "-o", "jsonpath={.status.availableReplicas}")
	}

	It("promotes a candidate whose online gates pass, and aborts one whose gates fail", func() {
		managerAlive()
		prom, errorRatio := testprometheus.StartWithGauge(GinkgoT(), "podium_e2e_error_ratio", "version")
		errorRatio.WithLabelValues("2").Set(0.001)
		errorRatio.WithLabelValues("3").Set(0.2)
		Eventually(func(g Gomega) {
			got, err := analysis.Prometheus{Address: prom.Address}.Measure(context.Background(), `max(podium_e2e_error_ratio{version="3"})`)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(0.2))
		}).WithTimeout(20*time.Second).Should(Succeed(), "Prometheus has scraped the exporter")

		createNamespace(ns)
		mustApply(fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: RegisteredModel
metadata: {name: %s, namespace: %s}
spec:
  promotion:
    gates: [{metric: test_accuracy, min: 0.85}]
  serving:
    replicas: 4
    template:
      spec:
        containers:
        - name: predictor
          image: registry.example.com/battle-api:1.4
          ports: [{name: http, containerPort: 8000}]
    rollout:
      strategy: Canary
      steps:
      - {weight: 25, duration: 3s}
      - {weight: 50, duration: 3s}
      analysis:
        prometheus: {address: %q}
        interval: 1s
        metrics:
        - name: error-rate
          query: max(podium_e2e_error_ratio{version="{{.Version}}"})
          max: 0.01
`, model, ns, prom.Address))

		By("version 1 goes straight to Production: there is nothing to share traffic with")
		mustApply(version(1))
		stageOf(1).Should(Equal("Production"))
		replicas(stable).Should(Equal("4"))

		By("version 2 becomes the candidate on a quarter of the pods, and kubectl get shows it")
		mustApply(version(2))
		replicas(canary).Should(Equal("1"))
		Expect(mustKubectl("get", "modelversion", model+"-2", "-n", ns, "-o", "jsonpath={.status.stage}")).To(Equal("Staging"))
		Expect(mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.status.stage}")).To(Equal("Production"))
		// SERVING stays 1 while the stable Deployment gives up a pod to the canary (surge before
		// shrink) and its status lags that change.
		Expect(mustKubectl("get", "rm", model, "-n", ns)).To(MatchRegexp(`CANDIDATE\s+WEIGHT[\s\S]*\n%s\s+1\s+2\s+1\s+Progressing\s+2\s+25`, model))

		By("version 2 passes both steps and becomes Production; the canary goes once the stable pods serve it")
		stageOf(2).Should(Equal("Production"))
		Expect(mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.status.stage}")).To(Equal("Archived"))
		eventuallyKubectl("get", "deployment", canary, "-n", ns, "--ignore-not-found", "-o", "name").Should(BeEmpty())
		eventuallyKubectl("get", "rm", model, "-n", ns, "-o", "jsonpath={.status.serving.version}").Should(Equal("2"))
		Expect(mustKubectl("get", "rm", model, "-n", ns, "-o", "jsonpath={.status.rollout.phase}")).To(Equal("Succeeded"))

		By("version 3 fails its online gate: traffic returns to version 2 and version 3 is Archived")
		mustApply(version(3))
		stageOf(3).Should(Equal("Archived"))
		Expect(mustKubectl("get", "rm", model, "-n", ns, "-o", "jsonpath={.status.productionVersion}")).To(Equal("2"))
		Expect(mustKubectl("get", "rm", model, "-n", ns, "-o", `jsonpath={.status.history[-1].reason}: {.status.history[-1].message}`)).
			To(ContainSubstring("AnalysisFailed: Analysis failed: error-rate 0.2 is outside <= 0.01"))
		eventuallyKubectl("get", "deployment", canary, "-n", ns, "--ignore-not-found", "-o", "name").Should(BeEmpty())
		replicas(stable).Should(Equal("4"))
		eventuallyKubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name="+model,
			"-o", "jsonpath={range .items[*]}{.reason} {end}").Should(ContainSubstring("RolloutAborted"))

		mustKubectl("delete", "namespace", ns, "--wait=false")
	})
})
