//go:build e2e

package e2e

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
)

// The prediction Deployment on a cluster where Deployments really roll out. On the kwok cluster,
// pods whose MODEL_URI contains "never-ready" never become ready (hack/kwok-cluster.sh), which
// makes a rollout fail for real.
var _ = Describe("Serving the Production version", func() {
	const ns, model = "e2e-serving", "predictor-demo"
	const deployment = model + "-predictor"

	version := func(n int, uri string) string {
		return fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: ModelVersion
metadata: {name: %[1]s-%[2]d, namespace: %[3]s}
spec:
  registeredModel: %[1]s
  version: %[2]d
  artifact: {uri: %[4]q}
  metrics: {test_accuracy: 0.9%[2]d}
`, model, n, ns, uri)
	}
	served := func() AsyncAssertion {
		return eventuallyKubectl("get", "registeredmodel", model, "-n", ns, "-o", "jsonpath={.status.serving.version}")
	}
	templateURI := func() AsyncAssertion {
		return eventuallyKubectl("get", "deployment", deployment, "-n", ns, "-o",
			`jsonpath={.spec.template.spec.containers[0].env[?(@.name=="MODEL_URI")].value}`)
	}

	It("rolls out promotions and rollbacks, rolls back a failed rollout, and cleans up", func() {
		managerAlive()
		createNamespace(ns)
		mustApply(fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: RegisteredModel
metadata: {name: %s, namespace: %s}
spec:
  promotion:
    gates: [{metric: test_accuracy, min: 0.85}]
  serving:
    replicas: 2
    progressDeadlineSeconds: 5
    template:
      spec:
        containers:
        - name: predictor
          image: registry.example.com/battle-api:1.4
          ports: [{name: http, containerPort: 8000}]
`, model, ns))

		By("promoting version 3: the Deployment rolls out and v3 is Serving")
		mustApply(version(3, "s3://ml-artifacts/battle-winner/3/"))
		served().Should(Equal("3"))
		mustKubectl("wait", "-n", ns, "--for=condition=Serving", "--timeout=60s", "modelversion/"+model+"-3")
		mustKubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=60s", "registeredmodel/"+model)
		Expect(mustKubectl("get", "deployment", deployment, "-n", ns, "-o", "jsonpath={.status.availableReplicas}")).To(Equal("2"))

		By("promoting version 4: the Deployment rolls to its URI")
		mustApply(version(4, "s3://ml-artifacts/battle-winner/4/"))
		templateURI().Should(Equal("s3://ml-artifacts/battle-winner/4/"))
		served().Should(Equal("4"))

		By("rolling back with kubectl patch")
		mustKubectl("patch", "modelversion", model+"-3", "-n", ns, "--type=merge", "-p", `{"spec":{"stage":"Production"}}`)
		templateURI().Should(Equal("s3://ml-artifacts/battle-winner/3/"))
		served().Should(Equal("3"))

		By("promoting version 5, whose pods never become ready: the operator rolls back to version 3")
		mustApply(version(5, "s3://ml-artifacts/never-ready/5/"))
		templateURI().Should(Equal("s3://ml-artifacts/never-ready/5/"))
		eventuallyKubectl("get", "modelversion", model+"-5", "-n", ns, "-o", "jsonpath={.status.stage}").Should(Equal("Archived"))
		templateURI().Should(Equal("s3://ml-artifacts/battle-winner/3/"))
		served().Should(Equal("3"))
		Expect(mustKubectl("get", "registeredmodel", model, "-n", ns, "-o",
			`jsonpath={range .status.history[-2:]}{.version}:{.reason} {end}`)).To(Equal("5:RolloutFailed 3:Restored"))
		eventuallyKubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name="+model+"-5",
			"-o", "jsonpath={range .items[*]}{.reason} {end}").Should(ContainSubstring("RolloutFailed"))

		By("deleting the model: its Deployment and Service go with it")
		mustKubectl("delete", "registeredmodel", model, "-n", ns)
		eventuallyKubectl("get", "deployments,services", "-n", ns, "-o", "name").Should(BeEmpty())
	})
})
