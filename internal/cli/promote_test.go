package cli

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var _ = Describe("promote and rollback", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("rolls back to the previous Production version from the history, and back again", func(ctx context.Context) {
		seedStory(ctx, ns)
		r := podium(ctx, ns, "rollback", seed)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.stdout).To(Equal("Version 3 of battle-winner-predictor is Production\n"))
		Expect(r.stderr).To(HavePrefix("Waiting up to 2m0s for version 3 of battle-winner-predictor to become Production\n"))
		Expect(r.stderr).To(HaveSuffix("  Production version 3; battle-winner-predictor-3 is Production\n"))
		// No Eventually: the command returned only once the operator had decided.
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Production 4=Archived"))
		Expect(succeed(ctx, ns, "history", seed)).To(MatchRegexp(`\n\S+\s+3\s+Archived\s+Production\s+Rollback\s+-\s+Rolled back from version 4`))

		By("rolling back from the rollback")
		Expect(succeed(ctx, ns, "rollback", seed)).To(Equal("Version 4 of battle-winner-predictor is Production\n"))
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Archived 4=Production"))
	})

	It("rolls back --to a version whose gates fail", func(ctx context.Context) {
		seedStory(ctx, ns)
		Expect(succeed(ctx, ns, "rollback", seed, "--to", "2")).To(Equal("Version 2 of battle-winner-predictor is Production\n"))
		Expect(stages(ctx, ns)).To(Equal("2=Production 3=Archived 4=Archived"))
	})

	It("promotes a version again after its earlier Production request was acted on", func(ctx context.Context) {
		seedStory(ctx, ns)
		succeed(ctx, ns, "rollback", seed) // v3 now has spec.stage: Production, acted on
		succeed(ctx, ns, "promote", seed, "4")
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Archived 4=Production"))
		v3 := getVersion(ctx, ns, seed+"-3")
		Expect(v3.Spec.Stage).To(Equal(mlv1.StageProduction))
		Expect(v3.Status.ObservedStageRequest).To(Equal(mlv1.StageProduction))

		// Writing spec.stage: Production again would change nothing the operator looks at.
		Expect(succeed(ctx, ns, "promote", seed, "3", "--timeout", "30s")).To(Equal("Version 3 of battle-winner-predictor is Production\n"))
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Production 4=Archived"))
		v3 = getVersion(ctx, ns, seed+"-3")
		Expect(v3.Spec.Stage).To(Equal(mlv1.StageProduction))
		Expect(v3.Status.ObservedStageRequest).To(Equal(mlv1.StageProduction))
	})

	It("takes a version by number, v-number or ModelVersion name", func(ctx context.Context) {
		seedStory(ctx, ns)
		succeed(ctx, ns, "promote", seed, "v3")
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Production 4=Archived"))
		succeed(ctx, ns, "promote", seed, seed+"-4")
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Archived 4=Production"))
	})

	It("says so when the version is Production already, without waiting", func(ctx context.Context) {
		seedStory(ctx, ns)
		r := podium(ctx, ns, "promote", seed, "4")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.stdout).To(Equal("Version 4 of battle-winner-predictor is already Production\n"))
		Expect(r.stderr).To(BeEmpty())
		Expect(getVersion(ctx, ns, seed+"-4").Spec.Stage).To(BeEmpty())
	})

	It("returns once the request is written with --no-wait", func(ctx context.Context) {
		// No operator runs: nothing but the request can happen.
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		r := podium(ctx, ns, "promote", seed, "3", "--no-wait")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.stdout).To(Equal("Asked for version 3 of battle-winner-predictor as Production\n"))
		Expect(r.stderr).To(BeEmpty())
		v := getVersion(ctx, ns, seed+"-3")
		Expect(v.Spec.Stage).To(Equal(mlv1.StageProduction))
		Expect(v.Status.Stage).To(BeEmpty())
	})

	It("on timeout, says what the operator reported last", func(ctx context.Context) {
		stopOperator := seedStory(ctx, ns)
		stopOperator()
		r := podium(ctx, ns, "promote", seed, "3", "--timeout", "1s")
		Expect(r.err).To(MatchError(fmt.Sprintf("version 3 of %[1]s did not become Production within 1s; "+
			"the operator reported last: ModelVersion %[1]s-3: Ready=True (Reconciled): Stage Archived; "+
			"RegisteredModel %[1]s: Ready=True (Reconciled): Version 4 is Production. "+
			"Check that the Podium operator runs, and read its log", seed)))
		Expect(r.stderr).To(ContainSubstring("  Production version 4; battle-winner-predictor-3 is Archived\n"))
	})
})

var _ = Describe("approve", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("promotes, waits, and says it approved", func(ctx context.Context) {
		seedStory(ctx, ns)
		r := podium(ctx, ns, "approve", seed, "3")
		Expect(r.err).NotTo(HaveOccurred())
		// The CLI suite installs no admission policies: nobody stamps the requester.
		Expect(r.stdout).To(Equal("Version 3 of battle-winner-predictor is Production, approved (the history does not " +
			"say by whom: the governance admission policies are not installed)\n"))
		Expect(r.stderr).To(HavePrefix("Waiting up to 2m0s for version 3 of battle-winner-predictor to become Production\n"))
		Expect(stages(ctx, ns)).To(Equal("2=None 3=Production 4=Archived"))

		Expect(succeed(ctx, ns, "approve", seed, "3")).To(Equal(
			"Version 3 of battle-winner-predictor is already Production\nNothing to approve\n"))
	})

	It("returns once the approval is written with --no-wait", func(ctx context.Context) {
		create(ctx, seedModel(ns), seedVersion(ns, 3, "0.8512"))
		Expect(succeed(ctx, ns, "approve", seed, "3", "--no-wait")).To(Equal(
			"Approved version 3 of battle-winner-predictor as Production\n"))
		Expect(getVersion(ctx, ns, seed+"-3").Spec.Stage).To(Equal(mlv1.StageProduction))
	})
})

var _ = Describe("history", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("shows who caused each transition, and which version was Production at a time", func(ctx context.Context) {
		seedStory(ctx, ns)
		before := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
		succeed(ctx, ns, "promote", seed, "3")

		out := succeed(ctx, ns, "history", seed)
		Expect(out).To(HavePrefix("TIME                   VERSION   FROM         TO           REASON        BY       MESSAGE\n"))
		Expect(out).To(MatchRegexp(`\n\S+\s+4\s+-\s+Production\s+GatesPassed\s+podium\s+Passed every gate`))
		// A request whose author no admission policy recorded.
		Expect(out).To(MatchRegexp(`\n\S+\s+3\s+Archived\s+Production\s+Rollback\s+-\s+Rolled back from version 4`))
		Expect(out).NotTo(ContainSubstring("full"))

		now := time.Now().UTC().Add(time.Minute).Format(time.RFC3339)
		Expect(succeed(ctx, ns, "history", seed, "--at", now)).To(MatchRegexp(
			`^Version 3 of battle-winner-predictor was Production at ` + now + `: from \S+ \(Rollback, by -\) and still is\n$`))
		Expect(succeed(ctx, ns, "history", seed, "--at", before)).To(MatchRegexp(
			`^No version of battle-winner-predictor was Production at ` + before + `: its first transition is at \S+\n$`))

		r := podium(ctx, ns, "history", seed, "--at", "yesterday")
		Expect(r.err).To(MatchError(ContainSubstring(`--at "yesterday" is not a time`)))
		r = podium(ctx, ns, "history", seed, "--at", now, "-o", "json")
		Expect(r.err).To(MatchError("--at answers in a sentence; leave out -o"))
	})
})

var _ = Describe("history after the model is deleted", func() {
	It("reads the StageRecords, which outlive the model and its versions, and marks a model created again", func(ctx context.Context) {
		ns := newNamespace(ctx)
		stop := seedStory(ctx, ns)
		// Three transitions: 3 to Production, then 3 to Archived and 4 to Production (2 stays None).
		Eventually(func(g Gomega) {
			var recs mlv1.StageRecordList
			g.Expect(k8sClient.List(ctx, &recs, client.InNamespace(ns))).To(Succeed())
			g.Expect(recs.Items).To(HaveLen(3))
		}).Should(Succeed())
		promoted := time.Now().UTC().Format(time.RFC3339)

		// Without the operator, so that the deletions are not transitions; and with the model's
		// finalizer removed by hand, as docs/troubleshooting.md says, so that its deletion is not
		// recorded either: the records end at version 4's promotion.
		stop()
		Expect(k8sClient.DeleteAllOf(ctx, &mlv1.ModelVersion{}, client.InNamespace(ns))).To(Succeed())
		Expect(k8sClient.Delete(ctx, seedModel(ns))).To(Succeed())
		Expect(k8sClient.Patch(ctx, seedModel(ns), client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
		Eventually(func() bool {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: seed}, &mlv1.RegisteredModel{})
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
		out := succeed(ctx, ns, "history", seed)
		Expect(out).To(MatchRegexp(`\n\S+\s+4\s+-\s+Production\s+GatesPassed\s+podium\s+Passed every gate`))
		Expect(out).To(HaveSuffix("RegisteredModel battle-winner-predictor no longer exists: these are its StageRecords, which outlive it.\n"))
		Expect(succeed(ctx, ns, "history", seed, "--at", promoted)).To(MatchRegexp(
			`^Version 4 of battle-winner-predictor was Production at \S+: from \S+ \(GatesPassed, by podium\) until the model was deleted\n$`))

		By("creating the model again: its rows come after a line that says so")
		// History times have seconds: the new model's first transition comes after promoted.
		Eventually(func() string { return time.Now().UTC().Format(time.RFC3339) }).ShouldNot(Equal(promoted))
		create(ctx, seedModel(ns))
		stop = startOperator(ns)
		DeferCleanup(func() { stop() })
		registerSeed(ctx, ns, 1, "0.8601")
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("1=Production"))
		Eventually(func(g Gomega) {
			out := succeed(ctx, ns, "history", seed)
			g.Expect(out).To(MatchRegexp(`(?s)4\s+-\s+Production.*\n-\s+-\s+.*RegisteredModel battle-winner-predictor was ` +
				`deleted and created again: the rows below are of the new model\n\S+\s+1\s+-\s+Production\s+GatesPassed`))
			g.Expect(out).NotTo(ContainSubstring("no longer exists"))
		}).Should(Succeed())
		Expect(succeed(ctx, ns, "history", seed, "--at", promoted)).To(MatchRegexp(
			`^Version 4 of battle-winner-predictor was Production at \S+: from \S+ \(GatesPassed, by podium\) ` +
				`until the model was deleted, before \S+\n$`))
	})
})

var _ = Describe("promote --skip-rollout", func() {
	It("makes a canary model's candidate Production at once, and says so on the version", func(ctx context.Context) {
		ns := newNamespace(ctx)
		m := seedModel(ns)
		m.Spec.Serving = &mlv1.Serving{
			Replicas: new(int32(4)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "predictor", Image: "registry.example.com/battle-api:1.4",
				Ports: []corev1.ContainerPort{{ContainerPort: 8000}},
			}}}},
			Rollout: &mlv1.Rollout{Strategy: mlv1.RolloutCanary,
				Steps: []mlv1.RolloutStep{{Weight: 25, Duration: metav1.Duration{Duration: time.Hour}}}},
		}
		create(ctx, m)
		startOperator(ns)
		registerSeed(ctx, ns, 3, "0.8512")
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production"))
		registerSeed(ctx, ns, 4, "0.8723")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
			g.Expect(m.Status.Rollout).NotTo(BeNil())
			g.Expect(m.Status.Rollout.Phase).To(Equal(mlv1.RolloutProgressing))
		}).Should(Succeed())
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Staging"), "version 4 is the canary's candidate")

		Expect(succeed(ctx, ns, "promote", seed, "4", "--skip-rollout", "--no-wait")).
			To(Equal("Asked for version 4 of battle-winner-predictor as Production\n"))
		Expect(getVersion(ctx, ns, seed+"-4").Annotations).To(HaveKeyWithValue(mlv1.AnnotationSkipRollout, "true"))
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Archived 4=Production"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		Expect(m.Status.Rollout.Phase).To(Equal(mlv1.RolloutAborted))
		Expect(m.Status.Rollout.Message).To(Equal("Ended: version 4 became Production at once (ManualRequest)"))
	})
})
