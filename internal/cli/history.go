package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/printers"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func newHistoryCommand(r *root) *cobra.Command {
	var output, at string
	cmd := &cobra.Command{
		Use:   "history MODEL [--at TIME]",
		Short: "Show the stage transitions of a model's versions, newest last",
		Long: fmt.Sprintf(`Show the stage transitions of a model's versions, newest last, as the operator recorded them:
when, which version, from and to which stage, why, and who caused it (BY: the user who asked for
the stage, or podium for the operator's own decisions; - when unknown) and, with the governance
admission policies installed, who registered the version (REGISTERED BY, from its
ml.podium.dev/registered-by annotation; - for a version deleted since). The model keeps as many as
its spec.historyLimit says (%d unless set, at most %d); when it holds that many, older ones were
dropped, and the table says so.

With --at TIME, say which version was Production at that time, from the history. TIME is
RFC 3339 (2025-01-25T13:00:00Z), a date and time in UTC (2025-01-25T13:00) or a date (2025-01-25,
its start in UTC).`, mlv1.DefaultHistoryLimit, mlv1.MaxHistoryLimit),
		Example: `  kubectl podium history battle-winner-predictor

  # Which version was Production at 1 p.m. UTC on 25 January 2025
  kubectl podium history battle-winner-predictor --at 2025-01-25T13:00:00Z

  # The transitions as JSON, for scripts
  kubectl podium history battle-winner-predictor -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: r.completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			var when time.Time
			if at != "" {
				if output != formatTable {
					return errors.New("--at answers in a sentence; leave out -o")
				}
				var err error
				if when, err = parseTime(at); err != nil {
					return err
				}
			}
			c, err := r.cluster()
			if err != nil {
				return err
			}
			model, err := c.model(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if at != "" {
				_, err := fmt.Fprintln(r.streams.Out, productionAt(model.Name, model.Status.History, when, model.HistoryLimit()))
				return err
			}
			if output != formatTable {
				return printData(r.streams.Out, output, model.Status.History)
			}
			versions, err := c.versions(cmd.Context(), model.Name)
			if err != nil {
				return err
			}
			return writeHistory(r.streams.Out, model, model.Status.History, registrants(versions))
		},
	}
	addOutputFlag(cmd, &output, formatJSON, formatYAML)
	cmd.Flags().StringVar(&at, "at", "", "Say which version was Production at this time (RFC 3339, or a date in UTC)")
	return cmd
}

// writeHistory writes shown, the model's history or its newest entries, as a table, oldest first,
// and says when older entries were dropped: when the model's history holds as many as its
// spec.historyLimit. With registrants, a REGISTERED BY column says who registered each version.
func writeHistory(w io.Writer, model *mlv1.RegisteredModel, shown []mlv1.HistoryEntry, registrants map[int64]registrant) error {
	t := printers.GetNewTabWriter(w)
	header, row := "TIME\tVERSION\tFROM\tTO\tREASON\tBY\tMESSAGE", "%s\t%d\t%s\t%s\t%s\t%s\t%[7]s\n"
	if registrants != nil {
		header, row = "TIME\tVERSION\tFROM\tTO\tREASON\tBY\tREGISTERED BY\tMESSAGE", "%s\t%d\t%s\t%s\t%s\t%s\t%[8]s\t%[7]s\n"
	}
	_, _ = fmt.Fprintln(t, header)
	for _, h := range shown {
		_, _ = fmt.Fprintf(t, row, timestamp(h.Time), h.Version, orDash(h.From), h.To, h.Reason, orDash(h.By), h.Message,
			orDash(registrants[h.Version].of(h)))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if limit := model.HistoryLimit(); historyFull(model.Status.History, limit) {
		_, err := fmt.Fprintf(w, "The history is full: the model keeps its last %d transitions (spec.historyLimit), "+
			"so older ones were dropped.\n", limit)
		return err
	}
	return nil
}

// registrant is who registered the ModelVersion that now holds a version number, as the
// governance policies stamp it, and that object's UID.
type registrant struct{ uid, by string }

// of is who registered the version of history entry h: unknown ("") when the entry is about
// another object with that number, deleted since.
func (r registrant) of(h mlv1.HistoryEntry) string {
	if h.VersionUID != "" && h.VersionUID != r.uid {
		return ""
	}
	return r.by
}

// registrants maps each version number to who registered it; nil when no version carries the
// stamp (the policies are not installed).
func registrants(versions []mlv1.ModelVersion) map[int64]registrant {
	var out map[int64]registrant
	for _, v := range versions {
		if by := v.Annotations[mlv1.AnnotationRegisteredBy]; by != "" {
			if out == nil {
				out = map[int64]registrant{}
			}
			out[v.Spec.Version] = registrant{uid: string(v.UID), by: by}
		}
	}
	return out
}

// historyFull says whether the history holds as many entries as the model keeps, limit: older ones
// may have been dropped.
func historyFull(history []mlv1.HistoryEntry, limit int) bool { return len(history) >= limit }

// timeLayouts are the forms --at accepts; those without a zone are UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

func parseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q is not a time: write 2025-01-25T13:00:00Z, 2025-01-25T13:00 (UTC) or 2025-01-25", s)
}

// productionAt says, from the history, which version was Production at the time: the last
// transition into Production at or before it, unless a later one at or before it took that
// version out again. limit is the model's spec.historyLimit: a history that long may have dropped
// the answer.
func productionAt(model string, history []mlv1.HistoryEntry, at time.Time, limit int) string {
	when := at.UTC().Format(time.RFC3339)
	if len(history) == 0 {
		return fmt.Sprintf("RegisteredModel %s has no history yet: no version has been Production", model)
	}
	if oldest := history[0].Time; at.Before(oldest.Time) {
		if historyFull(history, limit) {
			return fmt.Sprintf("%s is before the oldest transition RegisteredModel %s keeps (%s): the model keeps "+
				"its last %d transitions (spec.historyLimit), so which version was Production then is no longer recorded",
				when, model, timestamp(oldest), limit)
		}
		return fmt.Sprintf("No version of %s was Production at %s: its first transition is at %s", model, when, timestamp(oldest))
	}
	var in, out *mlv1.HistoryEntry // the entry that made the version Production, and the one that ended it
	for i := range history {
		h := &history[i]
		if h.Time.After(at) {
			if in != nil && out == nil && h.Version == in.Version && h.From == mlv1.StageProduction {
				out = h
			}
			continue
		}
		switch {
		case h.To == mlv1.StageProduction:
			in, out = h, nil
		case in != nil && h.Version == in.Version && h.From == mlv1.StageProduction:
			in, out = nil, h
		}
	}
	if in == nil {
		if out != nil {
			return fmt.Sprintf("No version of %s was Production at %s: version %d left Production at %s (%s, by %s)",
				model, when, out.Version, timestamp(out.Time), out.Reason, orDash(out.By))
		}
		return fmt.Sprintf("No version of %s was Production at %s", model, when)
	}
	until := "and still is"
	if out != nil {
		until = "until " + timestamp(out.Time)
	}
	return fmt.Sprintf("Version %d of %s was Production at %s: from %s (%s, by %s) %s",
		in.Version, model, when, timestamp(in.Time), in.Reason, orDash(in.By), until)
}
