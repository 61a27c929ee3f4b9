package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The layout of these outputs is pinned by the golden files; these specs check that they show
// what the operator decided on a real cluster.
var _ = Describe("compare, history and status", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		seedStory(ctx, ns)
	})

	It("compare shows one row per version, the Production one marked", func(ctx context.Context) {
		lines := strings.Split(strings.TrimSpace(succeed(ctx, ns, "compare", seed)), "\n")
		Expect(lines).To(HaveLen(4))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"VERSION", "STAGE", "overfitting", "test_accuracy", "GATES", "AGE"}))
		Expect(lines[1]).To(MatchRegexp(`^2\s+None\s+0\.0233\s+0\.8203\s+fail: test_accuracy 0\.8203 < 0\.85\s+\d+s$`))
		Expect(lines[2]).To(MatchRegexp(`^3\s+Archived\s+0\.0233\s+0\.8512\s+1/1\s+\d+s$`))
		Expect(lines[3]).To(MatchRegexp(`^\*4\s+Production\s+0\.0233\s+0\.8723\s+1/1\s+\d+s$`))
	})

	It("compare writes CSV and JSON with the metrics as numbers", func(ctx context.Context) {
		records, err := csv.NewReader(strings.NewReader(succeed(ctx, ns, "compare", seed, "-o", "csv"))).ReadAll()
		Expect(err).NotTo(HaveOccurred())
		Expect(records).To(HaveLen(4))
		Expect(records[0]).To(Equal([]string{"version", "name", "stage", "overfitting", "test_accuracy", "gates", "created"}))
		Expect(records[3][:6]).To(Equal([]string{"4", seed + "-4", "Production", "0.0233", "0.8723", "1/1"}))

		var rows []map[string]any
		Expect(json.Unmarshal([]byte(succeed(ctx, ns, "compare", seed, "-o", "json")), &rows)).To(Succeed())
		Expect(rows).To(HaveLen(3))
		Expect(rows[2]).To(HaveKeyWithValue("production", true))
		Expect(rows[2]).To(HaveKeyWithValue("metrics", map[string]any{"test_accuracy": 0.8723, "overfitting": 0.0233}))
	})

	It("rejects an output format it does not know", func(ctx context.Context) {
		r := podium(ctx, ns, "compare", seed, "-o", "xml")
		Expect(r.err).To(MatchError(`unknown output format "xml"; use one of: json, yaml, csv`))
	})

	It("history lists the operator's transitions, newest last", func(ctx context.Context) {
		lines := strings.Split(strings.TrimSpace(succeed(ctx, ns, "history", seed)), "\n")
		Expect(lines).To(HaveLen(4))
		Expect(lines[1]).To(MatchRegexp(`^\S+Z\s+3\s+-\s+Production\s+GatesPassed\s+podium\s+Passed every gate: test_accuracy 0\.8512 >= 0\.85$`))
		Expect(lines[2]).To(MatchRegexp(`\s+3\s+Production\s+Archived\s+Superseded\s+podium\s+Replaced by version 4$`))
		Expect(lines[3]).To(MatchRegexp(`\s+4\s+-\s+Production\s+GatesPassed\s+podium\s+`))
	})

	It("status summarises the model", func(ctx context.Context) {
		out := succeed(ctx, ns, "status", seed)
		Expect(out).To(ContainSubstring("Production:    version 4 (battle-winner-predictor-4, test_accuracy=0.8723)\n"))
		Expect(out).To(ContainSubstring("Latest:        version 4, 3 versions registered\n"))
		Expect(out).To(MatchRegexp(`Conditions:    Ready=True \(Reconciled, \d+s ago\): Version 4 is Production\n`))
		Expect(out).To(ContainSubstring("Last 3 of 3 transitions, newest last:\n"))
		Expect(out).NotTo(ContainSubstring("Serving:"))
	})
})
