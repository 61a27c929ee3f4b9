package cli

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func newCompareCommand(r *root) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "compare MODEL",
		Short: "Compare the versions of a model: stage, metrics and gates",
		Long: `Compare the versions of a model, one row per version: its stage, every metric, whether it
passes the model's gates, and its age. The Production version is marked with *.`,
		Example: `  kubectl podium compare battle-winner-predictor

  # For a spreadsheet or a notebook
  kubectl podium compare battle-winner-predictor -o csv > versions.csv`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: r.completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := r.comparison(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeComparison(r.streams.Out, output, rows, r.now())
		},
	}
	addOutputFlag(cmd, &output, formatJSON, formatYAML, formatCSV)
	return cmd
}

// comparisonRow is one version in the comparison.
type comparisonRow struct {
	Version    int64                  `json:"version"`
	Name       string                 `json:"name"`
	Stage      mlv1.Stage             `json:"stage"`
	Production bool                   `json:"production"`
	Metrics    map[string]mlv1.Number `json:"metrics"`
	Gates      string                 `json:"gates"`
	Created    metav1.Time            `json:"created"`
}

// comparison reads a model's versions into comparison rows.
func (r *root) comparison(ctx context.Context, model string) ([]comparisonRow, error) {
	c, err := r.cluster()
	if err != nil {
		return nil, err
	}
	if _, err := c.model(ctx, model); err != nil {
		return nil, err
	}
	versions, err := c.versions(ctx, model)
	if err != nil {
		return nil, err
	}
	return comparisonRows(versions), nil
}

func comparisonRows(versions []mlv1.ModelVersion) []comparisonRow {
	rows := make([]comparisonRow, 0, len(versions))
	for _, v := range versions {
		rows = append(rows, comparisonRow{
			Version:    v.Spec.Version,
			Name:       v.Name,
			Stage:      v.Status.Stage,
			Production: v.Status.Stage == mlv1.StageProduction,
			Metrics:    v.Spec.Metrics,
			Gates:      gatesSummary(&v),
			Created:    v.CreationTimestamp,
		})
	}
	return rows
}

// gatesSummary says how a version fares against the model's gates: "2/2" when every gate passes,
// "fail: " and the first failure when one does not, "no gates" when the model has none, and "-"
// before the operator has evaluated the version.
func gatesSummary(v *mlv1.ModelVersion) string {
	cond := meta.FindStatusCondition(v.Status.Conditions, mlv1.ConditionGatesPassed)
	switch {
	case cond == nil:
		return "-"
	case cond.Reason == mlv1.ReasonNoGates:
		return "no gates"
	case cond.Status == metav1.ConditionTrue:
		return fmt.Sprintf("%d/%d", len(v.Status.Gates), len(v.Status.Gates))
	}
	first, _, _ := strings.Cut(cond.Message, "; ")
	return "fail: " + first
}

// writeComparison writes the rows as a table, or in the -o format.
func writeComparison(w io.Writer, format string, rows []comparisonRow, now time.Time) error {
	switch format {
	case formatTable:
		return writeComparisonTable(w, rows, now)
	case formatCSV:
		return writeComparisonCSV(w, rows)
	}
	return printData(w, format, rows)
}

func writeComparisonTable(w io.Writer, rows []comparisonRow, now time.Time) error {
	names := metricNames(rows)
	t := printers.GetNewTabWriter(w)
	_, _ = fmt.Fprintln(t, strings.Join(slices.Concat([]string{"VERSION", "STAGE"}, names, []string{"GATES", "AGE"}), "\t"))
	for _, row := range rows {
		version := strconv.FormatInt(row.Version, 10)
		if row.Production {
			version = "*" + version
		}
		cells := make([]string, 0, len(names)+4)
		cells = append(cells, version, orDash(row.Stage))
		for _, name := range names {
			cells = append(cells, row.Metrics[name].String())
		}
		cells = append(cells, row.Gates, age(row.Created, now))
		_, _ = fmt.Fprintln(t, strings.Join(cells, "\t"))
	}
	return t.Flush()
}

func writeComparisonCSV(w io.Writer, rows []comparisonRow) error {
	names := metricNames(rows)
	out := csv.NewWriter(w)
	_ = out.Write(slices.Concat([]string{"version", "name", "stage"}, names, []string{"gates", "created"}))
	for _, row := range rows {
		cells := make([]string, 0, len(names)+5)
		cells = append(cells, strconv.FormatInt(row.Version, 10), row.Name, string(row.Stage))
		for _, name := range names {
			cells = append(cells, row.Metrics[name].String())
		}
		_ = out.Write(append(cells, row.Gates, timestamp(row.Created)))
	}
	out.Flush()
	return out.Error()
}

// metricNames lists every metric any row reports, sorted.
func metricNames(rows []comparisonRow) []string {
	seen := map[string]bool{}
	for _, row := range rows {
		for name := range row.Metrics {
			seen[name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
