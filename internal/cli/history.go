package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/printers"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func newHistoryCommand(r *root) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history MODEL",
		Short: "Show the stage transitions of a model's versions, newest last",
		Long: `Show the stage transitions of a model's versions, newest last, as the operator recorded them:
when, which version, from and to which stage, and why. The model keeps the last 100.`,
		Example: `  kubectl podium history battle-winner-predictor

  # The transitions as JSON, for scripts
  kubectl podium history battle-winner-predictor -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: r.completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.cluster()
			if err != nil {
				return err
			}
			model, err := c.model(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output != formatTable {
				return printData(r.streams.Out, output, model.Status.History)
			}
			return writeHistory(r.streams.Out, model.Status.History)
		},
	}
	addOutputFlag(cmd, &output, formatJSON, formatYAML)
	return cmd
}

// writeHistory writes history entries as a table, oldest first.
func writeHistory(w io.Writer, history []mlv1.HistoryEntry) error {
	t := printers.GetNewTabWriter(w)
	_, _ = fmt.Fprintln(t, "TIME\tVERSION\tFROM\tTO\tREASON\tMESSAGE")
	for _, h := range history {
		_, _ = fmt.Fprintf(t, "%s\t%d\t%s\t%s\t%s\t%s\n",
			timestamp(h.Time), h.Version, orDash(h.From), h.To, h.Reason, h.Message)
	}
	return t.Flush()
}
