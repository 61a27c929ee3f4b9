//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// The governance spec plays issue #13's story with people: the real kubectl impersonates them
// (--as, --as-group) through `kubectl podium` and `kubectl patch`, the API server authenticates
// the impersonated identity, and the admission policies of config/governance judge and stamp it.
// In a namespace whose ConfigMap podium-governance names the group ml-reviewers as approvers, the
// data scientist alice registers versions and may not promote them; the reviewer bob approves,
// the operator promotes, and the history says who did what and which version was Production when.
//
// The policies are cluster-wide, so the spec is Serial and removes them when it ends.
var _ = Describe("Governance through kubectl --as", Serial, func() {
	const ns = "e2e-governance"
	const model = "churn-predictor"
	alice := []string{"--as", "alice", "--as-group", "ml-scientists"}
	bob := []string{"--as", "bob", "--as-group", "ml-reviewers"}
	refusal := fmt.Sprintf("denied request: user alice may not request spec.stage: Production in namespace %s: "+
		"the ConfigMap podium-governance there lets only its approvers promote or archive versions; "+
		"ask one of them (users: none; groups: ml-reviewers)", ns)

	// podium runs `kubectl podium ARGS -n ns` as who and returns its trimmed stdout.
	podium := func(who []string, args ...string) (string, error) {
		env := pluginEnv()
		args = append(append(append([]string{"podium"}, args...), "-n", ns), who...)
		return run(context.Background(), env, "", filepath.Join(kubeBinDir, "kubectl"), args...)
	}
	mustPodium := func(who []string, args ...string) string {
		GinkgoHelper()
		out, err := podium(who, args...)
		Expect(err).NotTo(HaveOccurred())
		return out
	}
	// kubectlAs runs kubectl ARGS -n ns as who.
	kubectlAs := func(who []string, args ...string) (string, error) {
		return kubectl(append(append(args, "-n", ns), who...)...)
	}
	stageOf := func(n int) string {
		GinkgoHelper()
		return mustKubectl("get", "modelversion", fmt.Sprintf("%s-%d", model, n), "-n", ns, "-o",
			`jsonpath={.spec.stage}/{.status.stage}/{.metadata.annotations.ml\.podium\.dev/stage-requested-by}`)
	}
	// register registers version n as alice and waits until the operator has put it in Staging:
	// the model is Manual, so a version that passes the gate waits there for an approver.
	register := func(n int, accuracy string) {
		GinkgoHelper()
		Expect(mustPodium(alice, "register", model, "--version", fmt.Sprint(n),
			"--uri", fmt.Sprintf("s3://ml-artifacts/churn/%d/", n), "--metric", "test_accuracy="+accuracy)).
			To(Equal(fmt.Sprintf("Registered version %d of %s as ModelVersion %s-%d in namespace %s", n, model, model, n, ns)))
		Eventually(stageOf).WithArguments(n).Should(Equal("/Staging/"))
	}
	// history is the model's history as the plugin prints it with -o json, read as bob.
	history := func() []mlv1.HistoryEntry {
		GinkgoHelper()
		var h []mlv1.HistoryEntry
		Expect(json.Unmarshal([]byte(mustPodium(bob, "history", model, "-o", "json")), &h)).To(Succeed())
		return h
	}
	// approvedAt is when the operator made version n Production on bob's request, from the history.
	approvedAt := func(n int64) time.Time {
		GinkgoHelper()
		for _, h := range history() {
			if h.Version == n && h.To == mlv1.StageProduction {
				Expect(h.Reason).To(Equal(mlv1.ReasonManualRequest))
				Expect(h.By).To(Equal("bob"))
				return h.Time.Time
			}
		}
		Fail(fmt.Sprintf("the history has no entry of version %d into Production", n))
		return time.Time{}
	}

	It("lets a reviewer approve what a data scientist registered, and the history says who and when", func() {
		managerAlive()
		Expect(filepath.Join(podiumBinDir, "kubectl-podium")).To(BeAnExistingFile(), "build it with 'make build'")
		createNamespace(ns)

		By("installing the governance admission policies of config/governance")
		governance := filepath.Join(repoRoot, "config", "governance")
		mustKubectl("apply", "-k", governance)
		DeferCleanup(func() {
			_, err := kubectl("delete", "-k", governance, "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
			awaitGovernanceGone(ns)
		})

		By("letting data scientists and reviewers work with models in the namespace, and making ml-reviewers its approvers")
		mustApply(fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: model-author
  namespace: %[1]s
rules:
- apiGroups: [ml.podium.dev]
  resources: [modelversions]
  verbs: [create, get, list, patch]
- apiGroups: [ml.podium.dev]
  resources: [registeredmodels]
  verbs: [get, list]
- apiGroups: [ml.podium.dev]
  resources: [stagerecords]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: model-deleter
  namespace: %[1]s
rules:
- apiGroups: [ml.podium.dev]
  resources: [modelversions]
  verbs: [delete]
# kubectl podium delete marks the model for deletion (a patch of one annotation), then deletes it.
- apiGroups: [ml.podium.dev]
  resources: [registeredmodels]
  verbs: [delete, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: model-deleters
  namespace: %[1]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: model-deleter
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: ml-reviewers
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: model-authors
  namespace: %[1]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: model-author
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: ml-scientists
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: ml-reviewers
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: podium-governance
  namespace: %[1]s
data:
  approverGroups: ml-reviewers
  requireManualMode: "true"
`, ns))

		By("waiting until the policies stamp and judge requests: the API server loads them asynchronously")
		// A dry run as alice: the mutation stamps her as the registrant, and the approvers policy
		// refuses her request for Production. Until both are loaded, requests are refused as
		// ServiceUnavailable or let through unjudged.
		probe := fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: ModelVersion
metadata:
  name: %[1]s-probe
  namespace: %[2]s
spec:
  registeredModel: %[1]s
  version: 1000
  artifact:
    uri: s3://ml-artifacts/churn/probe/
`, model, ns)
		Eventually(func(g Gomega) string {
			out, err := run(context.Background(), nil, probe, filepath.Join(kubeBinDir, "kubectl"),
				append([]string{"--kubeconfig", kubeconfig, "create", "--dry-run=server", "-f", "-", "-o",
					`jsonpath={.metadata.annotations.ml\.podium\.dev/registered-by}`}, alice...)...)
			g.Expect(err).NotTo(HaveOccurred())
			return out
		}).Should(Equal("alice"))
		Eventually(func() error {
			_, err := run(context.Background(), nil, probe+"  stage: Production\n", filepath.Join(kubeBinDir, "kubectl"),
				append([]string{"--kubeconfig", kubeconfig, "create", "--dry-run=server", "-f", "-"}, alice...)...)
			return err
		}).Should(MatchError(ContainSubstring(refusal)))

		By("refusing an Automatic model, as requireManualMode asks, and admitting a Manual one")
		manifest := fmt.Sprintf(`apiVersion: ml.podium.dev/v1alpha1
kind: RegisteredModel
metadata:
  name: %s
  namespace: %s
spec:
  description: Predicts which customers leave
  promotion:
    mode: %%s
    gates:
    - metric: test_accuracy
      min: 0.85
`, model, ns)
		_, err := kubectlWithInput(fmt.Sprintf(manifest, "Automatic"), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("must set spec.promotion.mode: Manual")))
		mustApply(fmt.Sprintf(manifest, "Manual"))

		By("alice registers version 1 with kubectl podium, and the API server records her as its registrant")
		register(1, "0.91")
		Expect(mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o",
			`jsonpath={.metadata.annotations.ml\.podium\.dev/registered-by}`)).To(Equal("alice"))

		By("alice may not promote it, with kubectl podium or kubectl patch, and nothing changes")
		_, err = podium(alice, "promote", model, "1", "--timeout", "10s")
		Expect(err).To(MatchError(ContainSubstring(refusal)))
		_, err = kubectlAs(alice, "patch", "modelversion", model+"-1", "--type=merge",
			"-p", `{"spec":{"stage":"Production"}}`)
		Expect(err).To(MatchError(ContainSubstring(refusal)))
		Expect(stageOf(1)).To(Equal("/Staging/"), "spec.stage/status.stage/stage-requested-by")
		Expect(mustKubectl("get", "registeredmodel", model, "-n", ns, "-o", "jsonpath={.status.productionVersion}")).
			To(BeEmpty())

		By("bob, a reviewer, approves it with kubectl podium, and the operator promotes it")
		Expect(mustPodium(bob, "approve", model, "1")).
			To(HaveSuffix(fmt.Sprintf("Version 1 of %s is Production, approved by bob", model)))
		Expect(stageOf(1)).To(Equal("Production/Production/bob"))
		t1 := approvedAt(1)

		By("kubectl podium history shows bob as who promoted it, alice as who registered it, and when")
		table := strings.Split(mustPodium(alice, "history", model), "\n")
		Expect(table).To(HaveLen(2), "a header and the promotion")
		Expect(table[0]).To(MatchRegexp(`\sBY\s+REGISTERED BY\s+MESSAGE$`))
		Expect(table[1]).To(MatchRegexp(
			`^%s\s+1\s+Staging\s+Production\s+ManualRequest\s+bob\s+alice\s+Promoted by a spec.stage: Production request$`,
			regexp.QuoteMeta(t1.UTC().Format(time.RFC3339))))

		By("alice registers version 2 at least two seconds later, and bob approves it too")
		// History times have a resolution of one second: two apart leave a second between the
		// two promotions for --at to ask about.
		Eventually(time.Now).Should(BeTemporally(">=", t1.Add(2*time.Second)))
		register(2, "0.93")
		Expect(mustPodium(bob, "approve", model, "2")).
			To(HaveSuffix(fmt.Sprintf("Version 2 of %s is Production, approved by bob", model)))
		Expect(stageOf(1)).To(Equal("Production/Archived/bob"), "spec.stage stays what bob asked")
		t2 := approvedAt(2)
		Expect(t2).To(BeTemporally(">=", t1.Add(2*time.Second)))
		Expect(mustPodium(alice, "history", model)).To(MatchRegexp(
			`(?m)^%s\s+1\s+Production\s+Archived\s+Superseded\s+bob\s+alice\s+Replaced by version 2$`,
			regexp.QuoteMeta(t2.UTC().Format(time.RFC3339))))

		By("kubectl podium history --at answers which version was Production between the two promotions")
		between := t1.Add(time.Second).UTC().Format(time.RFC3339)
		Expect(mustPodium(alice, "history", model, "--at", between)).To(Equal(fmt.Sprintf(
			"Version 1 of %s was Production at %s: from %s (ManualRequest, by bob) until %s",
			model, between, t1.UTC().Format(time.RFC3339), t2.UTC().Format(time.RFC3339))))
		Expect(mustPodium(alice, "history", model, "--at", t2.UTC().Format(time.RFC3339))).To(Equal(fmt.Sprintf(
			"Version 2 of %s was Production at %[2]s: from %[2]s (ManualRequest, by bob) and still is",
			model, t2.UTC().Format(time.RFC3339))))

		By("bob may not delete what serves, not even as an approver: he archives it, which restores version 1, then deletes the model")
		_, err = kubectlAs(bob, "delete", "modelversion", model+"-2")
		Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("user bob may not delete ModelVersion %s-2, which serves", model))))
		_, err = kubectlAs(bob, "patch", "modelversion", model+"-2", "--type=merge", "-p", `{"spec":{"stage":"Archived"}}`)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return stageOf(2) }).Should(Equal("Archived/Archived/bob"))
		Eventually(func() string { return stageOf(1) }).Should(Equal("Production/Production/bob"))
		_, err = kubectlAs(bob, "delete", "registeredmodel", model)
		Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("user bob may not delete RegisteredModel %s without marking "+
			"it for deletion first", model))))
		Expect(mustPodium(bob, "delete", model)).To(Equal(fmt.Sprintf("RegisteredModel %s deleted (recorded as deleted by bob); "+
			"its history stays: kubectl podium history %s", model, model)))
		// Once the operator has seen the model go, the versions say so, and serve nothing.
		Eventually(func() string {
			return mustKubectl("get", "modelversion", model+"-1", "-n", ns, "-o",
				`jsonpath={.status.conditions[?(@.type=="Ready")].reason}`)
		}).Should(Equal(mlv1.ReasonModelNotFound))
		_, err = kubectlAs(bob, "delete", "modelversions", model+"-1", model+"-2")
		Expect(err).NotTo(HaveOccurred())

		By("kubectl podium history still shows who did what, from the StageRecords, which outlive the model")
		table = strings.Split(mustPodium(alice, "history", model), "\n")
		Expect(table).To(HaveLen(8), "a header, six transitions and the line that says the model is gone")
		Expect(table[1]).To(MatchRegexp(`^\S+\s+1\s+Staging\s+Production\s+ManualRequest\s+bob\s+alice\s`))
		Expect(table[4]).To(MatchRegexp(`^\S+\s+2\s+Production\s+Archived\s+ArchiveRequest\s+bob\s+alice\s`))
		Expect(table[5]).To(MatchRegexp(`^\S+\s+1\s+Archived\s+Production\s+Restored\s+bob\s+alice\s`))
		Expect(table[6]).To(MatchRegexp(`^\S+\s+1\s+Production\s+None\s+ModelDeleted\s+bob\s+alice\s+RegisteredModel \S+ was deleted; version 1 stopped serving$`))
		Expect(table[7]).To(Equal(fmt.Sprintf("RegisteredModel %s no longer exists: these are its StageRecords, which outlive it.", model)))
		Expect(mustPodium(alice, "history", model, "--at", between)).To(HavePrefix(fmt.Sprintf(
			"Version 1 of %s was Production at %s: from %s (ManualRequest, by bob) until %s",
			model, between, t1.UTC().Format(time.RFC3339), t2.UTC().Format(time.RFC3339))))
		_, err = kubectlAs(alice, "delete", "stagerecords", "--all")
		Expect(err).To(MatchError(ContainSubstring("forbidden")), "nobody but the operator deletes a record")
	})
})

// awaitGovernanceGone waits, after the governance policies were deleted, until the API server
// applies neither to a ModelVersion created in ns. It drops deleted policies one by one, some time
// after the delete: while the validation outlives the mutation it refuses every new ModelVersion,
// in every namespace, for the specs that run next.
func awaitGovernanceGone(ns string) {
	GinkgoHelper()
	By("waiting until the API server no longer applies the governance policies")
	Eventually(func(g Gomega) {
		out, err := kubectlWithInput(unstampedVersion, "create", "--dry-run=server", "-n", ns, "-o",
			`jsonpath={.metadata.annotations}`, "-f", "-")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).NotTo(ContainSubstring(mlv1.AnnotationRegisteredBy))
	}).Should(Succeed())
}

// unstampedVersion is a ModelVersion for dry runs that tell whether the governance policies apply.
const unstampedVersion = `apiVersion: ml.podium.dev/v1alpha1
kind: ModelVersion
metadata:
  name: governance-probe
spec:
  registeredModel: governance-probe
  version: 1
  artifact:
    uri: s3://governance-probe/
`
