package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func TestProductionAtAnswersFromTheHistory(t *testing.T) {
	model, _ := rolledBackSeed()
	at := func(day, hour, minute int) time.Time { return time.Date(2025, 1, day, hour, minute, 0, 0, time.UTC) }
	tests := []struct {
		name string
		at   time.Time
		want string
	}{
		{"before the first transition of a history that dropped nothing, none was",
			at(24, 9, 0), "No version of battle-winner-predictor was Production at 2025-01-24T09:00:00Z: " +
				"its first transition is at 2025-01-24T10:00:00Z"},
		{"the first version, until the next replaced it",
			at(25, 12, 0), "Version 1 of battle-winner-predictor was Production at 2025-01-25T12:00:00Z: " +
				"from 2025-01-24T10:00:00Z (GatesPassed, by podium) until 2025-01-25T12:15:00Z"},
		{"at the very time of a transition, its outcome",
			at(25, 14, 30), "Version 4 of battle-winner-predictor was Production at 2025-01-25T14:30:00Z: " +
				"from 2025-01-25T14:30:00Z (GatesPassed, by podium) until 2025-01-25T15:45:00Z"},
		{"a rollback, with who asked for it, still in force",
			at(26, 0, 0), "Version 3 of battle-winner-predictor was Production at 2025-01-26T00:00:00Z: " +
				"from 2025-01-25T15:45:00Z (Rollback, by alice) and still is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := productionAt(model.Name, model.Status.History, tt.at, model.HistoryLimit(), ""); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestProductionAtAfterARetirement(t *testing.T) {
	history := []mlv1.HistoryEntry{
		{Version: 1, To: mlv1.StageProduction, Reason: mlv1.ReasonManualRequest, Time: metav1.NewTime(time.Unix(100, 0)), By: "alice"},
		{Version: 1, From: mlv1.StageProduction, To: mlv1.StageArchived, Reason: mlv1.ReasonArchiveRequest,
			Time: metav1.NewTime(time.Unix(200, 0)), By: "bob"},
	}
	want := "No version of m was Production at 1970-01-01T00:05:00Z: version 1 left Production at " +
		"1970-01-01T00:03:20Z (ArchiveRequest, by bob)"
	if got := productionAt("m", history, time.Unix(300, 0), mlv1.DefaultHistoryLimit, ""); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// modelWithHistory is a model named m with spec.historyLimit limit (nil: not set) and n
// transitions, one a minute from t0.
func modelWithHistory(limit *int32, n int, t0 time.Time) *mlv1.RegisteredModel {
	m := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Name: "m"}, Spec: mlv1.RegisteredModelSpec{HistoryLimit: limit}}
	for i := range n {
		m.Status.History = append(m.Status.History, mlv1.HistoryEntry{Version: int64(i + 1), To: mlv1.StageProduction,
			Reason: mlv1.ReasonGatesPassed, Time: metav1.NewTime(t0.Add(time.Duration(i) * time.Minute)), By: mlv1.ByOperator})
	}
	return m
}

func TestAFullHistorySaysThatOlderTransitionsWereDropped(t *testing.T) {
	t0 := time.Date(2025, 1, 25, 0, 0, 0, 0, time.UTC)
	before := time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		model   *mlv1.RegisteredModel
		dropped string // the table's last line and the start of --at's answer before the oldest entry; empty: none
	}{
		{"without spec.historyLimit, 100 entries are full", modelWithHistory(nil, 100, t0), "100"},
		{"without spec.historyLimit, 99 entries have room", modelWithHistory(nil, 99, t0), ""},
		{"with spec.historyLimit 10, 10 entries are full", modelWithHistory(new(int32(10)), 10, t0), "10"},
		{"with spec.historyLimit 10, 9 entries have room", modelWithHistory(new(int32(10)), 9, t0), ""},
		{"with spec.historyLimit 500, 100 entries have room", modelWithHistory(new(int32(500)), 100, t0), ""},
		{"a history longer than a lowered limit, not trimmed yet, is full", modelWithHistory(new(int32(5)), 8, t0), "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeHistory(&out, tt.model, tt.model.Status.History, nil); err != nil {
				t.Fatal(err)
			}
			answer := productionAt("m", tt.model.Status.History, before, tt.model.HistoryLimit(), "")
			if tt.dropped == "" {
				if strings.Contains(out.String(), "full") {
					t.Errorf("a history with room left says it is full:\n%s", out.String())
				}
				if want := "No version of m was Production at 2024-12-31T00:00:00Z: its first transition is at 2025-01-25T00:00:00Z"; answer != want {
					t.Errorf("--at before the oldest entry:\ngot  %s\nwant %s", answer, want)
				}
				return
			}
			last := "The history is full: the model keeps its last " + tt.dropped +
				" transitions (spec.historyLimit), so older ones were dropped.\n"
			if !strings.HasSuffix(out.String(), last) {
				t.Errorf("a full history does not end with %q:\n%s", last, out.String())
			}
			want := "2024-12-31T00:00:00Z is before the oldest transition RegisteredModel m keeps (2025-01-25T00:00:00Z): " +
				"the model keeps its last " + tt.dropped + " transitions (spec.historyLimit), so which version was " +
				"Production then is no longer recorded"
			if answer != want {
				t.Errorf("--at before the oldest entry:\ngot  %s\nwant %s", answer, want)
			}
		})
	}
}

func TestStatusSaysTheHistoryIsFullWhenTheModelsIs(t *testing.T) {
	t0 := time.Date(2025, 1, 25, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		limit int32
		full  bool
	}{{8, true}, {9, false}} {
		var out bytes.Buffer
		m := modelWithHistory(new(tt.limit), 8, t0)
		if err := writeStatus(&out, &modelStatus{model: m}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), "The history is full"); got != tt.full {
			t.Errorf("with spec.historyLimit %d and 8 transitions, of which status shows the last 5, full = %v:\n%s",
				tt.limit, got, out.String())
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2025, 1, 25, 13, 0, 0, 0, time.UTC)
	for _, s := range []string{"2025-01-25T13:00:00Z", "2025-01-25T14:00:00+01:00", "2025-01-25T13:00", "2025-01-25T13:00:00"} {
		if got, err := parseTime(s); err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := parseTime("2025-01-25"); err != nil || !got.Equal(time.Date(2025, 1, 25, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parseTime(2025-01-25) = %v, %v", got, err)
	}
	if _, err := parseTime("yesterday"); err == nil || !strings.Contains(err.Error(), "2025-01-25T13:00:00Z") {
		t.Errorf("parseTime(yesterday) = %v; want an error that shows the forms", err)
	}
}

func TestApprovedSaysWhoTheHistoryRecords(t *testing.T) {
	model, _ := rolledBackSeed()
	if got, want := approved(model, 3), "Version 3 of battle-winner-predictor is Production, approved by alice"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	model.Status.History[len(model.Status.History)-1].By = ""
	if got := approved(model, 3); !strings.Contains(got, "the history does not say by whom") {
		t.Errorf("an approval without by: %s", got)
	}
}
