//go:build e2e

package e2e

import (
	"fmt"
	"regexp"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
)

// The smoke specs check the ground the later scenarios stand on: a running, elected manager,
// established CRDs and a cluster where Deployments become Available.
var _ = Describe("Podium on a kwok cluster", func() {
	It("serves the manager's health endpoints", func() {
		managerAlive()
		for _, path := range []string{"/healthz", "/readyz"} {
			Eventually(httpStatus).WithArguments("http://"+probeAddr+path).
				Should(Equal(200), "GET %s", path)
		}
	})

	It("holds the leader-election Lease in the manager's namespace", func() {
		managerAlive()
		// The manager's namespace holds no other Lease; its name is the manager's LeaderElectionID.
		eventuallyKubectl("get", "leases", "-n", managerNamespace,
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{"\n"}{end}`).
			Should(MatchRegexp(`(?m)^[^=]+=`+regexp.QuoteMeta(hostname)+`_`),
				"controller-runtime names the holder <hostname>_<uuid>")
	})

	It("has both CRDs Established", func() {
		mustKubectl("wait", "--for=condition=Established", "--timeout=60s",
			"crd/registeredmodels.ml.podium.dev", "crd/modelversions.ml.podium.dev")
	})

	It("rolls a Deployment out to Available on the fake nodes", func() {
		const ns, name = "e2e-smoke", "nginx"
		createNamespace(ns)
		mustApply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: 2
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: %[1]s
        image: nginx:1.27
`, name, ns))
		mustKubectl("wait", "--for=condition=Available", "--timeout=2m", "-n", ns, "deployment/"+name)
		eventuallyKubectl("get", "deployment", name, "-n", ns, "-o", "jsonpath={.status.readyReplicas}").
			Should(Equal("2"))
	})
})
