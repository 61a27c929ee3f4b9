//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck

	"github.com/podium-dev/podium/internal/testregistry"
)

// The OCI spec pushes a bundle to a real registry (the CNCF Distribution registry, on the port
// the suite manager was told is plain HTTP) with the real `kubectl podium register --push`, and
// follows the digest-pinned reference into the Deployment the API server accepted: fetched by
// the init container first, then mounted as an image volume. kwok runs no containers, so what
// is checked is what the API server holds, not a pull.
var _ = Describe("OCI bundles", func() {
	const ns, model = "e2e-oci", "oci-demo"
	const deployment = model + "-predictor"

	It("registers a pushed bundle pinned by digest, fetches it, then mounts it as an image volume", func() {
		managerAlive()
		reg := testregistry.Start(GinkgoT(), testregistry.Options{Host: registryHost})
		createNamespace(ns)
		mustApply(fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: RegisteredModel
metadata: {name: %s, namespace: %s}
spec:
  promotion:
    gates: [{metric: test_accuracy, min: 0.85}]
  serving:
    replicas: 1
    template:
      spec:
        containers:
        - name: predictor
          image: registry.example.com/battle-api:1.4
          ports: [{name: http, containerPort: 8000}]
`, model, ns))

		By("registering a bundle directory with kubectl podium register --push")
		dir := GinkgoT().TempDir()
		for name, content := range map[string]string{"model.pkl": "weights", "meta/metadata.pkl": "meta"} {
			Expect(os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)).To(Succeed())
		}
		env := pluginEnv("DOCKER_CONFIG=" + GinkgoT().TempDir()) // no credentials but the registry's anonymous access
		kubectlBin := filepath.Join(kubeBinDir, "kubectl")
		out, err := run(context.Background(), env, "", kubectlBin, "podium", "register", model, "-n", ns,
			"--push", dir, "--to", "oci://"+reg.Host+"/ml/x", "--plain-http", "--metric", "test_accuracy=0.9")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal(fmt.Sprintf("Registered version 1 of %s as ModelVersion %s-1 in namespace %s", model, model, ns)))

		uri := mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.spec.artifact.uri}")
		Expect(uri).To(MatchRegexp(`^oci://` + regexp.QuoteMeta(reg.Host) + `/ml/x@sha256:[0-9a-f]{64}$`))
		filesDigest, err := run(context.Background(), env, "", kubectlBin, "podium", "digest", dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.spec.artifact.digest}")).
			To(Equal(filesDigest))

		By("promoting it: the init container fetches exactly that reference, over plain HTTP")
		eventuallyKubectl("get", "modelversion", model+"-1", "-n", ns, "-o", "jsonpath={.status.stage}").
			Should(Equal("Production"))
		eventuallyKubectl("get", "registeredmodel", model, "-n", ns, "-o", "jsonpath={.status.serving.version}").
			Should(Equal("1"))
		Expect(mustKubectl("get", "deployment", deployment, "-n", ns, "-o",
			`jsonpath={.spec.template.spec.initContainers[?(@.name=="podium-fetch")].args}`)).To(Equal(fmt.Sprintf(
			`["fetch","--uri",%q,"--dest","/var/podium/model","--digest",%q,"--insecure-registry",%q]`, uri, filesDigest, reg.Host)))

		By("switching to bundleMount: ImageVolume: the pods mount the pinned artifact, with no init container")
		mustKubectl("patch", "registeredmodel", model, "-n", ns, "--type=merge", "-p",
			`{"spec":{"serving":{"bundleMount":"ImageVolume"}}}`)
		pinned := uri[len("oci://"):]
		eventuallyKubectl("get", "deployment", deployment, "-n", ns, "-o",
			`jsonpath={.spec.template.spec.volumes[?(@.name=="podium-model")].image}`).
			Should(MatchJSON(fmt.Sprintf(`{"reference":%q,"pullPolicy":"IfNotPresent"}`, pinned)))
		Expect(mustKubectl("get", "deployment", deployment, "-n", ns, "-o",
			`jsonpath={.spec.template.spec.initContainers}`)).To(BeEmpty())
		Expect(mustKubectl("get", "deployment", deployment, "-n", ns, "-o",
			`jsonpath={.spec.template.spec.containers[0].volumeMounts[?(@.name=="podium-model")]}`)).
			To(MatchJSON(`{"name":"podium-model","mountPath":"/var/podium/model","readOnly":true}`))
		mustKubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=60s", "registeredmodel/"+model)

		By("deleting the model")
		mustKubectl("delete", "registeredmodel", model, "-n", ns)
		eventuallyKubectl("get", "deployments", "-n", ns, "-o", "name").Should(BeEmpty())
	})
})
