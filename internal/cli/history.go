package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
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
ml.podium.dev/registered-by annotation; - when unknown).

The transitions come from the model's StageRecords, which outlive the model and its versions: the
history of a model deleted since is still shown, and a model deleted and created again under the
same name is marked. Without records (a user who may not list them, or a model recorded before
them), from the model's status, which keeps as many as its spec.historyLimit says (%d unless set,
at most %d); when it holds that many, older ones were dropped, and the table says so.

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
			model, err := c.findModel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			records, recordsErr := c.records(cmd.Context(), args[0])
			if model == nil && len(records) == 0 {
				return c.modelNotFound(args[0]) // no such model, and no record of one
			}
			if recordsErr != nil {
				_, _ = fmt.Fprintf(r.streams.ErrOut, "Showing the model's status.history only: %v\n", recordsErr)
			}
			if len(records) == 0 {
				return showStatusHistory(cmd.Context(), r, c, model, at, when, output)
			}
			rows := recordedRows(model, records)
			switch {
			case at != "":
				_, err := fmt.Fprintln(r.streams.Out, recordedProductionAt(args[0], model, rows, when))
				return err
			case output != formatTable:
				entries := make([]mlv1.HistoryEntry, 0, len(rows))
				for _, row := range rows {
					entries = append(entries, row.HistoryEntry)
				}
				return printData(r.streams.Out, output, entries)
			}
			return writeRecordedHistory(r.streams.Out, args[0], model, rows)
		},
	}
	addOutputFlag(cmd, &output, formatJSON, formatYAML)
	cmd.Flags().StringVar(&at, "at", "", "Say which version was Production at this time (RFC 3339, or a date in UTC)")
	return cmd
}

// showStatusHistory answers from the model's status.history alone: no StageRecord of it exists
// (a model recorded before StageRecords, or a user who may not list them).
func showStatusHistory(ctx context.Context, r *root, c *cluster, model *mlv1.RegisteredModel, at string,
	when time.Time, output string) error {
	if at != "" {
		_, err := fmt.Fprintln(r.streams.Out, productionAt(model.Name, model.Status.History, when, model.HistoryLimit(), ""))
		return err
	}
	if output != formatTable {
		return printData(r.streams.Out, output, model.Status.History)
	}
	versions, err := c.versions(ctx, model.Name)
	if err != nil {
		return err
	}
	return writeHistory(r.streams.Out, model, model.Status.History, registrants(versions))
}

// row is one transition of the history as a StageRecord, or an entry of the model's
// status.history not yet recorded, holds it.
type row struct {
	mlv1.HistoryEntry
	modelUID     string // the RegisteredModel that recorded it
	registeredBy string // who registered the version; "" when unknown
}

// recordedRows are the records of a model's name, with the entries of the model's status (nil
// when it does not exist) that have no record yet, oldest first.
func recordedRows(model *mlv1.RegisteredModel, records []mlv1.StageRecord) []row {
	type key struct {
		uid string
		seq int64
	}
	mlv1.SortStageRecords(records)
	rows := make([]row, 0, len(records))
	seen := map[key]bool{}
	for _, rec := range records {
		rows = append(rows, row{HistoryEntry: rec.Transition, modelUID: rec.Model.UID, registeredBy: rec.Version.RegisteredBy})
		seen[key{rec.Model.UID, rec.Transition.Sequence}] = true
	}
	if model == nil {
		return rows
	}
	byUID := map[string]string{}
	for _, rec := range records {
		if rec.Version.UID != "" && rec.Version.RegisteredBy != "" {
			byUID[rec.Version.UID] = rec.Version.RegisteredBy
		}
	}
	for _, h := range model.Status.History {
		if h.Sequence == 0 || !seen[key{string(model.UID), h.Sequence}] {
			rows = append(rows, row{HistoryEntry: h, modelUID: string(model.UID), registeredBy: byUID[h.VersionUID]})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.Time.Compare(b.Time.Time) })
	return rows
}

// writeRecordedHistory writes the rows as a table, oldest first, with a line where the model
// was deleted and created again, and says when the model no longer exists or when the oldest
// records were deleted by the operator's retention bound.
func writeRecordedHistory(w io.Writer, name string, model *mlv1.RegisteredModel, rows []row) error {
	// REGISTERED BY only where the governance policies stamp registrants, as writeHistory does.
	registered := slices.ContainsFunc(rows, func(r row) bool { return r.registeredBy != "" })
	cells := func(when, version, from, to, reason, by, registeredBy, message string) string {
		if !registered {
			return strings.Join([]string{when, version, from, to, reason, by, message}, "\t") + "\n"
		}
		return strings.Join([]string{when, version, from, to, reason, by, registeredBy, message}, "\t") + "\n"
	}
	t := printers.GetNewTabWriter(w)
	_, _ = fmt.Fprint(t, cells("TIME", "VERSION", "FROM", "TO", "REASON", "BY", "REGISTERED BY", "MESSAGE"))
	for i, h := range rows {
		if i > 0 && h.modelUID != rows[i-1].modelUID {
			_, _ = fmt.Fprint(t, cells("-", "-", "-", "-", "-", "-", "-",
				"RegisteredModel "+name+" was deleted and created again: the rows below are of the new model"))
		}
		_, _ = fmt.Fprint(t, cells(timestamp(h.Time), versionCell(h.Version), orDash(string(h.From)), string(h.To),
			string(h.Reason), orDash(h.By), orDash(h.registeredBy), h.Message))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if first := rows[0]; first.Sequence > 1 {
		_, _ = fmt.Fprintf(w, "The records start at transition %d of the model: older ones were deleted past the "+
			"operator's retention bound (--stage-records-per-model).\n", first.Sequence)
	}
	if last := rows[len(rows)-1]; model == nil || string(model.UID) != last.modelUID {
		_, err := fmt.Fprintf(w, "RegisteredModel %s no longer exists: these are its StageRecords, which outlive it.\n", name)
		return err
	}
	return nil
}

// versionCell is a version number, or "-" for 0: the deletion of a model no version served.
func versionCell(n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// recordedProductionAt says which version was Production at the time, from the rows of the
// model created under the name that recorded the newest transition at or before it.
func recordedProductionAt(name string, model *mlv1.RegisteredModel, rows []row, at time.Time) string {
	uid := rows[0].modelUID
	for _, h := range rows {
		if h.Time.After(at) {
			break
		}
		uid = h.modelUID
	}
	var entries []mlv1.HistoryEntry
	ended := ""
	for i, h := range rows {
		if h.modelUID != uid {
			if len(entries) > 0 && ended == "" {
				ended = "until the model was deleted, before " + timestamp(rows[i].Time)
			}
			continue
		}
		entries = append(entries, h.HistoryEntry)
	}
	if ended == "" && (model == nil || string(model.UID) != uid) {
		ended = "until the model was deleted"
	}
	return productionAt(name, entries, at, math.MaxInt, ended)
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
// the answer. ended says how the last version Production in the history stopped being it, when
// the model is gone; empty: it still is.
func productionAt(model string, history []mlv1.HistoryEntry, at time.Time, limit int, ended string) string {
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
	until := cmp.Or(ended, "and still is")
	if out != nil {
		until = "until " + timestamp(out.Time)
	}
	return fmt.Sprintf("Version %d of %s was Production at %s: from %s (%s, by %s) %s",
		in.Version, model, when, timestamp(in.Time), in.Reason, orDash(in.By), until)
}
