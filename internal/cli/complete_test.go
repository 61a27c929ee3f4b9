package cli

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("shell completion", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		seedStory(ctx, ns)
	})

	// complete runs cobra's completion request, as the shell scripts do, and returns the
	// candidates before the directive line.
	complete := func(ctx context.Context, args ...string) string {
		return succeed(ctx, ns, append([]string{"__complete"}, args...)...)
	}

	It("offers the namespace's models", func(ctx context.Context) {
		Expect(complete(ctx, "compare", "")).To(HavePrefix("battle-winner-predictor\tPredicts the winner of a battle\n:4\n"))
		Expect(complete(ctx, "promote", "")).To(HavePrefix("battle-winner-predictor\tPredicts the winner of a battle\n"))
	})

	It("offers a model's versions with their stage and primary metric", func(ctx context.Context) {
		want := "2\tNone test_accuracy=0.8203\n3\tArchived test_accuracy=0.8512\n4\tProduction test_accuracy=0.8723\n:36\n"
		Expect(complete(ctx, "promote", seed, "")).To(HavePrefix(want))
		Expect(complete(ctx, "rollback", seed, "--to", "")).To(HavePrefix(want))
	})
})
