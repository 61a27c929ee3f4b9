// Package chart tests the Helm chart charts/podium with the real helm and kustomize (from
// PODIUM_BIN_DIR, which make test-unit sets to bin/): it lints, its CRDs, RBAC and admission
// policy are those of config/ (kustomize build config/default, their single source), its manager
// container runs as config/'s does, and it grants no wildcard and runs the manager with least
// privilege.
package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/podium-dev/podium/internal/testregistry"
)

const release, releaseNamespace = "podium", "podium-system"

// The kinds whose rules are RBAC; every one the chart renders comes from config/rbac.
var roleKinds = []string{"Role", "ClusterRole"}

// The kinds of config/policy and config/governance, which the chart writes out again since Helm
// cannot read config/.
var policyKinds = []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
	"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}

// The admission objects each chart value installs, by name.
var (
	servingPolicies    = []string{"podium-serving-author"}
	governancePolicies = []string{"podium-version-provenance", "podium-record-provenance", "podium-promotion-approvers"}
)

func TestChartLints(t *testing.T) {
	for _, values := range [][]string{
		nil,
		{"--set", "watchNamespaces={ml,team-b}", "--set", "serviceMonitor.enabled=true"},
		{"--set", "servingPolicy.enabled=false"},
		{"--set", "governance.enabled=false"},
	} {
		args := append([]string{"lint", "--strict", chartDir(t), "-n", releaseNamespace}, values...)
		if out, err := exec.Command(tool(t, "helm"), args...).CombinedOutput(); err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestChartCRDsAreConfigs(t *testing.T) {
	want, got := kustomizeDefault(t).ofKind("CustomResourceDefinition"), helmTemplate(t).ofKind("CustomResourceDefinition")
	if len(want) == 0 {
		t.Fatal("kustomize build config/default has no CRD")
	}
	if diff := cmp.Diff(want.byKey(), got.byKey()); diff != "" {
		t.Errorf("chart CRDs differ from config/crd (-config +chart); run make manifests:\n%s", diff)
	}
}

func TestChartRBACIsConfigs(t *testing.T) {
	want, got := kustomizeDefault(t), helmTemplate(t)
	kinds := append([]string{"RoleBinding", "ClusterRoleBinding"}, roleKinds...)
	if diff := cmp.Diff(rbacOf(want.ofKind(kinds...)), rbacOf(got.ofKind(kinds...))); diff != "" {
		t.Errorf("chart RBAC differs from config/rbac (-config +chart); run make manifests:\n%s", diff)
	}
}

// TestChartAdmissionPoliciesAreConfigs: the chart installs the admission policies and bindings
// of config/policy and config/governance by default, cluster-scoped, with the same specs.
func TestChartAdmissionPoliciesAreConfigs(t *testing.T) {
	want, got := specsOf(kustomizeDefault(t).ofKind(policyKinds...)), specsOf(helmTemplate(t).ofKind(policyKinds...))
	// Each policy has a binding; the governance mutation and its validation share a name.
	if n := 2*len(servingPolicies) + 2*len(governancePolicies) + 2; len(want) != n {
		t.Fatalf("kustomize build config/default has %d admission policies and bindings, want %d: %v", len(want), n, want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chart admission policies differ from config/policy and config/governance (-config +chart); "+
			"copy their specs into charts/podium/templates/serving-policy.yaml and governance-policies.yaml:\n%s", diff)
	}
}

// TestChartAdmissionPoliciesAreOptional: each value removes its own policies, and only those.
func TestChartAdmissionPoliciesAreOptional(t *testing.T) {
	for value, names := range map[string][]string{
		"servingPolicy.enabled=false": servingPolicies,
		"governance.enabled=false":    governancePolicies,
	} {
		all, rest := helmTemplate(t).ofKind(policyKinds...), helmTemplate(t, "--set", value).ofKind(policyKinds...)
		removed := map[string]bool{}
		for _, o := range all {
			if _, ok := rest.byKey()[o.key()]; !ok {
				removed[o.name()] = true
			}
		}
		for _, o := range rest {
			if slices.Contains(names, o.name()) {
				t.Errorf("%s still renders %s", value, o.key())
			}
		}
		for name := range removed {
			if !slices.Contains(names, name) {
				t.Errorf("%s also removes %s", value, name)
			}
		}
	}
}

func TestChartWatchNamespacesGrantsRolesInThoseNamespacesOnly(t *testing.T) {
	config := kustomizeDefault(t)
	chart := helmTemplate(t, "--set", "watchNamespaces={ml,team-b}")
	managerRules := config.find("ClusterRole", "", "podium-manager-role")["rules"]

	want := rbacOf(config.ofKind(roleKinds...))
	delete(want, "ClusterRole podium-manager-role")
	for _, ns := range []string{"ml", "team-b"} {
		want["Role "+ns+"/podium-manager-role"] = map[string]any{"rules": managerRules}
	}
	if diff := cmp.Diff(want, rbacOf(chart.ofKind(roleKinds...))); diff != "" {
		t.Errorf("roles with watchNamespaces (-want +chart):\n%s", diff)
	}

	subjects := config.find("ClusterRoleBinding", "", "podium-manager-rolebinding")["subjects"]
	for _, ns := range []string{"ml", "team-b"} {
		binding := chart.find("RoleBinding", ns, "podium-manager-rolebinding")
		if binding == nil {
			t.Fatalf("no RoleBinding podium-manager-rolebinding in %s", ns)
		}
		wantRef := map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "podium-manager-role"}
		if diff := cmp.Diff(wantRef, binding["roleRef"]); diff != "" {
			t.Errorf("roleRef in %s (-want +chart):\n%s", ns, diff)
		}
		if diff := cmp.Diff(subjects, binding["subjects"]); diff != "" {
			t.Errorf("subjects in %s (-want +chart):\n%s", ns, diff)
		}
	}
	if chart.find("ClusterRoleBinding", "", "podium-manager-rolebinding") != nil {
		t.Error("watchNamespaces still binds the manager's ClusterRole cluster-wide")
	}
	if args := managerContainer(t, chart).Args; !slices.Contains(args, "--watch-namespaces=ml,team-b") {
		t.Errorf("manager args %q lack --watch-namespaces=ml,team-b", args)
	}
}

// TestChartRecordPolicyNamesItsOperator: only the operator removes the finalizer that records a
// deletion, so the policy must name the ServiceAccount this release runs as, and, with
// watchNamespaces, hold only where this operator records (another release records elsewhere).
func TestChartRecordPolicyNamesItsOperator(t *testing.T) {
	for _, c := range []struct {
		release, namespace string
		values             []string
		want               map[string]string
	}{
		{release, releaseNamespace, nil, map[string]string{
			"operatorNamespace": "'podium-system'", "operatorAccount": "'podium-controller-manager'", "watched": "true"}},
		{"team", "ml-ops", []string{"--set", "watchNamespaces={ml,team-b}"}, map[string]string{
			"operatorNamespace": "'ml-ops'", "operatorAccount": "'team-podium-controller-manager'",
			"watched": `request.namespace in ["ml","team-b"]`}},
	} {
		args := append([]string{"template", c.release, chartDir(t), "-n", c.namespace}, c.values...)
		chart := parse(t, runTool(t, "helm", args...))
		name := "podium-record-provenance"
		if c.release != release {
			name = c.release + "-" + name
		}
		policy := chart.find("ValidatingAdmissionPolicy", "", name)
		if policy == nil {
			t.Fatalf("release %s renders no ValidatingAdmissionPolicy %s", c.release, name)
		}
		variables, _, _ := unstructured.NestedSlice(policy, "spec", "variables")
		got := map[string]string{}
		for _, v := range variables {
			v := v.(map[string]any)
			if _, ok := c.want[v["name"].(string)]; ok {
				got[v["name"].(string)] = v["expression"].(string)
			}
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("release %s in %s: the policy's operator (-want +chart):\n%s", c.release, c.namespace, diff)
		}
	}
}

func TestChartManagerRunsAsConfigs(t *testing.T) {
	config := managerPod(t, kustomizeDefault(t))
	chart := managerPod(t, helmTemplate(t))
	if diff := cmp.Diff(config.SecurityContext, chart.SecurityContext); diff != "" {
		t.Errorf("pod securityContext (-config +chart):\n%s", diff)
	}
	want, got := config.Containers[0], chart.Containers[0]
	// The chart also names the fetcher image (the manager's, by default) and the log level.
	want.Args = append(want.Args, "--fetcher-image="+got.Image, "--zap-log-level=info")
	for _, field := range []struct {
		name      string
		want, got any
	}{
		{"command", want.Command, got.Command},
		{"args", want.Args, got.Args},
		{"securityContext", want.SecurityContext, got.SecurityContext},
		{"resources", want.Resources, got.Resources},
		{"livenessProbe", want.LivenessProbe, got.LivenessProbe},
		{"readinessProbe", want.ReadinessProbe, got.ReadinessProbe},
	} {
		if diff := cmp.Diff(field.want, field.got); diff != "" {
			t.Errorf("manager container %s (-config +chart):\n%s", field.name, diff)
		}
	}
}

func TestChartImageDigestPinsTheManagerAndTheFetcher(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	chart := helmTemplate(t, "--set", "image.repository=registry.example/podium", "--set", "image.tag=1.2.3",
		"--set", "image.digest="+digest)
	deployment := decode[appsv1.Deployment](t, chart.find("Deployment", releaseNamespace, "podium-controller-manager"))
	c := deployment.Spec.Template.Spec.Containers[0]
	want := "registry.example/podium:1.2.3@" + digest
	if c.Image != want {
		t.Errorf("image = %s, want %s", c.Image, want)
	}
	if !slices.Contains(c.Args, "--fetcher-image="+want) {
		t.Errorf("manager args %q lack --fetcher-image=%s: the init containers must run the pinned image", c.Args, want)
	}
}

func TestChartValuesReachTheManager(t *testing.T) {
	chart := helmTemplate(t, "--set", "replicaCount=2", "--set", "image.repository=registry.example/podium",
		"--set", "image.tag=1.2.3", "--set", "fetcherImage=registry.example/fetcher:1", "--set", "logLevel=debug",
		"--set", "extraArgs={--kube-api-qps=100}", "--set", "insecureRegistries={registry.ml:5000,zot.local}")
	deployment := decode[appsv1.Deployment](t, chart.find("Deployment", releaseNamespace, "podium-controller-manager"))
	if r := deployment.Spec.Replicas; r == nil || *r != 2 {
		t.Errorf("replicas = %v, want 2", r)
	}
	c := deployment.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example/podium:1.2.3" {
		t.Errorf("image = %s", c.Image)
	}
	for _, arg := range []string{"--leader-elect", "--fetcher-image=registry.example/fetcher:1", "--zap-log-level=debug",
		"--kube-api-qps=100", "--insecure-registry=registry.ml:5000,zot.local"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("manager args %q lack %s", c.Args, arg)
		}
	}
}

func TestChartServiceMonitorIsOptional(t *testing.T) {
	if sm := helmTemplate(t).ofKind("ServiceMonitor"); len(sm) != 0 {
		t.Errorf("a ServiceMonitor by default: %v", sm)
	}
	chart := helmTemplate(t, "--set", "serviceMonitor.enabled=true")
	monitors := chart.ofKind("ServiceMonitor")
	if len(monitors) != 1 {
		t.Fatalf("%d ServiceMonitors with serviceMonitor.enabled, want 1", len(monitors))
	}
	service := decode[corev1.Service](t,
		chart.find("Service", releaseNamespace, "podium-controller-manager-metrics-service"))
	selector, _, _ := unstructured.NestedStringMap(monitors[0], "spec", "selector", "matchLabels")
	if diff := cmp.Diff(service.Labels, selector, cmpSubset()); diff != "" {
		t.Errorf("the ServiceMonitor does not select the metrics Service (-service labels +selector):\n%s", diff)
	}
	endpoints, _, _ := unstructured.NestedSlice(monitors[0], "spec", "endpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != service.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor endpoints %v do not scrape the Service's port %s", endpoints, service.Spec.Ports[0].Name)
	}
}

// TestLeastPrivilege holds for the chart with any watch setting and for config/default.
func TestLeastPrivilege(t *testing.T) {
	for name, objs := range map[string]objects{
		"chart":                      helmTemplate(t, "--set", "serviceMonitor.enabled=true"),
		"chart with watchNamespaces": helmTemplate(t, "--set", "watchNamespaces={ml,team-b}"),
		"kustomize config/default":   kustomizeDefault(t),
	} {
		t.Run(name, func(t *testing.T) {
			roles := objs.ofKind(roleKinds...)
			if len(roles) == 0 {
				t.Fatal("no roles rendered")
			}
			for _, role := range roles {
				for _, rule := range decode[rbacv1.ClusterRole](t, role).Rules {
					for _, list := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources, rule.NonResourceURLs} {
						for _, v := range list {
							if strings.Contains(v, "*") {
								t.Errorf("%s %s grants the wildcard %q in %+v", role.kind(), role.name(), v, rule)
							}
						}
					}
				}
			}

			pod := managerPod(t, objs)
			psc := pod.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("the manager pod may run as root: runAsNonRoot is not true")
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("the manager pod's seccomp profile is not RuntimeDefault")
			}
			for _, c := range pod.Containers {
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Errorf("container %s has no securityContext", c.Name)
				case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
					t.Errorf("container %s may write its root filesystem", c.Name)
				case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
					t.Errorf("container %s allows privilege escalation", c.Name)
				case sc.Privileged != nil && *sc.Privileged:
					t.Errorf("container %s is privileged", c.Name)
				case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
					len(sc.Capabilities.Add) > 0:
					t.Errorf("container %s does not drop exactly ALL capabilities: %+v", c.Name, sc.Capabilities)
				}
			}
		})
	}
}

// object is one rendered manifest.
type object map[string]any

func (o object) kind() string { return o.str("kind") }
func (o object) name() string { return o.str("metadata", "name") }
func (o object) namespace() string {
	return o.str("metadata", "namespace")
}
func (o object) str(fields ...string) string {
	s, _, _ := unstructured.NestedString(o, fields...)
	return s
}

// key names an object in diffs: "Kind namespace/name", or "Kind name" when cluster-scoped.
func (o object) key() string {
	if ns := o.namespace(); ns != "" {
		return o.kind() + " " + ns + "/" + o.name()
	}
	return o.kind() + " " + o.name()
}

type objects []object

func (objs objects) ofKind(kinds ...string) objects {
	var out objects
	for _, o := range objs {
		if slices.Contains(kinds, o.kind()) {
			out = append(out, o)
		}
	}
	return out
}

func (objs objects) find(kind, namespace, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.namespace() == namespace && o.name() == name {
			return o
		}
	}
	return nil
}

func (objs objects) byKey() map[string]object {
	m := map[string]object{}
	for _, o := range objs {
		m[o.key()] = o
	}
	return m
}

// rbacOf keeps what grants permissions: the rules of roles, the roleRef and subjects of bindings.
func rbacOf(objs objects) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, o := range objs {
		kept := map[string]any{}
		for _, field := range []string{"rules", "roleRef", "subjects"} {
			if v, ok := o[field]; ok {
				kept[field] = v
			}
		}
		m[o.key()] = kept
	}
	return m
}

// specsOf keeps the spec of each object.
func specsOf(objs objects) map[string]any {
	m := map[string]any{}
	for _, o := range objs {
		m[o.key()] = o["spec"]
	}
	return m
}

// cmpSubset ignores the keys of the first map that the second lacks (labels a selector omits).
func cmpSubset() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		mi, ok := p.Last().(cmp.MapIndex)
		if !ok {
			return false
		}
		_, vy := mi.Values()
		return !vy.IsValid()
	}, cmp.Ignore())
}

func decode[T any](t *testing.T, o object) T {
	t.Helper()
	var v T
	if o == nil {
		t.Fatalf("decoding a %T: the object was not rendered", v)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o, &v); err != nil {
		t.Fatalf("decoding %s: %v", o.key(), err)
	}
	return v
}

func managerPod(t *testing.T, objs objects) corev1.PodSpec {
	t.Helper()
	deployment := objs.find("Deployment", releaseNamespace, "podium-controller-manager")
	return decode[appsv1.Deployment](t, deployment).Spec.Template.Spec
}

func managerContainer(t *testing.T, objs objects) corev1.Container {
	t.Helper()
	pod := managerPod(t, objs)
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers in the manager pod, want 1", len(pod.Containers))
	}
	return pod.Containers[0]
}

// helmTemplate renders the chart as release "podium" in podium-system, the names config/default
// gives, with its CRDs.
func helmTemplate(t *testing.T, values ...string) objects {
	t.Helper()
	args := append([]string{"template", release, chartDir(t), "-n", releaseNamespace, "--include-crds"}, values...)
	return parse(t, runTool(t, "helm", args...))
}

func kustomizeDefault(t *testing.T) objects {
	t.Helper()
	return parse(t, runTool(t, "kustomize", "build", filepath.Join(repoRoot(t), "config", "default")))
}

func parse(t *testing.T, manifests []byte) objects {
	t.Helper()
	var objs objects
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var o object
		if err := decoder.Decode(&o); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("parsing the rendered manifests: %v", err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}

func runTool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// tool is the path of bin/NAME (or PODIUM_BIN_DIR/NAME), which make test-unit installs.
func tool(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("PODIUM_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "bin")
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not found (%v): run 'make %s' or the tests with 'make test-unit'", path, err, name)
	}
	return path
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "charts", "podium")
}

// TestInstallerPinsTheManagerAndTheFetcher: dist/install.yaml (make build-installer, which runs
// hack/installer.sh) is config/default with the given image for the manager and its fetcher.
func TestInstallerPinsTheManagerAndTheFetcher(t *testing.T) {
	const img = "ghcr.io/podium-dev/podium:0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "installer.sh"), img)
	cmd.Env = append(os.Environ(), "KUSTOMIZE="+tool(t, "kustomize"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/installer.sh: %v\n%s", err, stderr.String())
	}
	installer, want := parse(t, out), kustomizeDefault(t)
	if len(installer) != len(want) {
		t.Fatalf("the installer has %d objects, config/default %d", len(installer), len(want))
	}
	deployment := decode[appsv1.Deployment](t, installer.find("Deployment", releaseNamespace, "podium-controller-manager"))
	c := deployment.Spec.Template.Spec.Containers[0]
	if c.Image != img || !slices.Contains(c.Args, "--fetcher-image="+img) {
		t.Errorf("the manager runs %s with args %q; want %s, and the same image for the fetcher", c.Image, c.Args, img)
	}
}

// TestChartInstallsFromAnOCIRegistry: the packaged chart, pushed to a real registry as an OCI
// artifact (make chart-push), renders from oci:// exactly as the chart in the checkout does.
func TestChartInstallsFromAnOCIRegistry(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	dir := t.TempDir()
	env := []string{"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"), "HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "data")}
	helm := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(tool(t, "helm"), args...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	helm("package", chartDir(t), "-d", dir)
	packages, err := filepath.Glob(filepath.Join(dir, "podium-*.tgz"))
	if err != nil || len(packages) != 1 {
		t.Fatalf("helm package wrote %v (%v), want one podium-VERSION.tgz", packages, err)
	}
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(packages[0]), "podium-"), ".tgz")
	helm("push", packages[0], "oci://"+reg.Host+"/charts", "--plain-http")
	fromRegistry := parse(t, helm("template", release, "oci://"+reg.Host+"/charts/podium", "--version", version,
		"--plain-http", "-n", releaseNamespace, "--include-crds"))
	local := helmTemplate(t)
	if len(fromRegistry) != len(local) {
		t.Fatalf("the chart from the registry renders %d objects, the checkout's %d", len(fromRegistry), len(local))
	}
	if diff := cmp.Diff(local.byKey(), fromRegistry.byKey()); diff != "" {
		t.Errorf("the chart from the registry renders differently (-checkout +registry):\n%s", diff)
	}
}
