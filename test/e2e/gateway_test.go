//go:build e2e

package e2e

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck

	"github.com/podium-dev/podium/internal/testenv"
	"github.com/podium-dev/podium/internal/testprometheus"
)

// A canary on the Gateway API, on a cluster where the manager started without the Gateway API
// CRDs and the spec installs them. kwok runs no data plane: nothing carries requests, so the spec
// checks the HTTPRoute the API server accepted, whose weights move as the steps advance.
var _ = Describe("Canary rollouts on the Gateway API", func() {
	const ns, model = "e2e-gateway", "gateway-demo"
	const stable, canary, route = model + "-predictor", model + "-predictor-canary", model + "-predictor"

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
	// split is the route as "stable=W canary=W mirror=P", naming the backends by their suffix.
	split := func() (string, error) {
		out, err := kubectl("get", "httproute", route, "-n", ns, "-o",
			`jsonpath={range .spec.rules[0].backendRefs[*]}{.name}={.weight} {end}{range .spec.rules[0].filters[*]}mirror={.requestMirror.percent}{end}`)
		return strings.TrimSpace(strings.ReplaceAll(out, model+"-predictor-", "")), err
	}

	It("moves the route's weights as the steps advance, after mirroring requests in the shadow", func() {
		managerAlive()
		By("installing the Gateway API CRDs into a cluster whose manager started without them")
		crds, err := testenv.GatewayAPICRDs()
		Expect(err).NotTo(HaveOccurred())
		mustKubectl("apply", "--server-side", "-f", crds)
		mustKubectl("wait", "--for=condition=established", "--timeout=60s", "crd/httproutes.gateway.networking.k8s.io")

		prom, errorRatio := testprometheus.StartWithGauge(GinkgoT(), "podium_e2e_gateway_error_ratio", "version")
		errorRatio.WithLabelValues("2").Set(0.001)

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
      - {weight: 25, duration: 5s}
      - {weight: 50, duration: 5s}
      shadow: {percent: 50, duration: 5s}
      traffic:
        gatewayAPI:
          parentRefs: [{name: public-gw, namespace: gateways}]
          hostnames: [battle.example.com]
      analysis:
        prometheus: {address: %q}
        interval: 1s
        metrics:
        - name: error-rate
          query: max(podium_e2e_gateway_error_ratio{version="{{.Version}}"})
          max: 0.01
`, model, ns, prom.Address))

		By("version 1 goes straight to Production, behind the route")
		mustApply(version(1))
		eventuallyKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.status.stage}").Should(Equal("Production"))
		Eventually(split).Should(Equal("stable=100"))
		Expect(mustKubectl("get", "httproute", route, "-n", ns, "-o", "jsonpath={.spec.hostnames[0]} {.spec.parentRefs[0].namespace}/{.spec.parentRefs[0].name}")).
			To(Equal("battle.example.com gateways/public-gw"))

		By("version 2 is mirrored to, then gets 25% and 50% of the requests, then all of them as Production")
		mustApply(version(2))
		var seen []string
		Eventually(func(g Gomega) {
			s, err := split()
			g.Expect(err).NotTo(HaveOccurred())
			if len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
			g.Expect(kubectl("get", "deployment", stable, "-n", ns, "-o", "jsonpath={.spec.replicas}")).To(Equal("4"),
				"the stable track keeps every pod")
			g.Expect(kubectl("get", "modelversion", model+"-2", "-n", ns, "-o", "jsonpath={.status.stage}")).To(Equal("Production"))
			g.Expect(s).To(Equal("stable=100"))
		}).Should(Succeed())
		Expect(seen).To(ContainElements("stable=100 mirror=50", "stable=75 canary=25", "stable=50 canary=50"), "seen: %v", seen)
		Expect(mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.status.stage}")).To(Equal("Archived"))
		eventuallyKubectl("get", "service", canary, "-n", ns, "--ignore-not-found", "-o", "name").Should(BeEmpty())
		eventuallyKubectl("get", "deployment", canary, "-n", ns, "--ignore-not-found", "-o", "name").Should(BeEmpty())

		mustKubectl("delete", "namespace", ns, "--wait=false")
	})
})
