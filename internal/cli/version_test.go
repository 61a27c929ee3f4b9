package cli

import (
	"bytes"
	"context"
	"maps"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("version", func() {
	It("prints the plugin's version and each manager's, from its label or its image's tag", func(ctx context.Context) {
		ns := newNamespace(ctx)
		labels := map[string]string{"app.kubernetes.io/name": "podium", "app.kubernetes.io/instance": ns}
		for name, version := range map[string]string{"podium-controller-manager": "0.1.0", "podium-kustomize": ""} {
			l := map[string]string{"app.kubernetes.io/version": version}
			maps.Copy(l, labels)
			if version == "" {
				delete(l, "app.kubernetes.io/version")
			}
			create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
				Spec: appsv1.DeploymentSpec{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager",
							Image: "registry.example:5000/podium:0.0.9@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}},
					},
				},
			})
		}
		out := succeed(ctx, ns, "version")
		Expect(out).To(HavePrefix("kubectl-podium: (devel)"), "a test binary is a build from a checkout")
		Expect(out).To(ContainSubstring("manager:        0.1.0 (Deployment " + ns + "/podium-controller-manager, image " +
			"registry.example:5000/podium:0.0.9@sha256:"))
		Expect(out).To(ContainSubstring("manager:        0.0.9 (Deployment "+ns+"/podium-kustomize, image"),
			"without the label, the image's tag")
	})

	It("warns when the plugin is of another release than the manager", func() {
		var w bytes.Buffer
		writeMismatch(&w, "v0.2.0 (commit 0123456789ab)", manager{namespace: "podium-system", name: "m", version: "0.1.0"})
		Expect(w.String()).To(Equal("warning: kubectl-podium v0.2.0 and the manager podium-system/m (0.1.0) are different " +
			"releases; install the plugin of the manager's: go install github.com/podium-dev/podium/cmd/kubectl-podium@v0.1.0\n"))
		w.Reset()
		writeMismatch(&w, "v0.1.0", manager{version: "0.1.0"})
		writeMismatch(&w, "(devel)", manager{version: "0.1.0"})
		Expect(w.String()).To(BeEmpty(), "the same release, or a build from a checkout, is not warned about")
	})
})
