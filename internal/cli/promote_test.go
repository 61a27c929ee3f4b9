package cli

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

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
		Expect(succeed(ctx, ns, "history", seed)).To(MatchRegexp(`\n\S+\s+3\s+Archived\s+Production\s+Rollback\s+Rolled back from version 4`))

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
