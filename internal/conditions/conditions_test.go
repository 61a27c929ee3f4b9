package conditions

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	before = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	now    = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

func cond(t string, status metav1.ConditionStatus) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: "Earlier", Message: "earlier", LastTransitionTime: metav1.NewTime(before)}
}

// render shows conditions as "Type=Status@when", in order; when is "then" or "now".
func render(conds []metav1.Condition) string {
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		when := "now"
		if c.LastTransitionTime.Time.Equal(before) {
			when = "then"
		}
		parts = append(parts, fmt.Sprintf("%s=%s@%s", c.Type, c.Status, when))
	}
	return strings.Join(parts, " ")
}

// TestSummarize runs every decision against every previous state the conditions can be in,
// including one that breaks the rules (Reconciling and Stalled together).
func TestSummarize(t *testing.T) {
	previous := map[string][]metav1.Condition{
		"none":                   nil,
		"ready":                  {cond(Ready, metav1.ConditionTrue)},
		"in progress":            {cond(Ready, metav1.ConditionFalse), cond(Reconciling, metav1.ConditionTrue)},
		"stalled":                {cond(Stalled, metav1.ConditionTrue), cond(Ready, metav1.ConditionFalse)},
		"reconciling and stalld": {cond(Reconciling, metav1.ConditionTrue), cond(Stalled, metav1.ConditionTrue), cond(Ready, metav1.ConditionFalse)},
		"ready with another":     {cond("GatesPassed", metav1.ConditionTrue), cond(Ready, metav1.ConditionTrue)},
	}
	decisions := map[string]struct {
		p      Progress
		status metav1.ConditionStatus
	}{
		"done, ready":     {Done, metav1.ConditionTrue},
		"done, not ready": {Done, metav1.ConditionFalse},
		"in progress":     {InProgress, metav1.ConditionTrue}, // Ready is False whatever was asked
		"blocked":         {Blocked, metav1.ConditionTrue},
	}
	want := map[string]map[string]string{
		"none": {
			"done, ready": "Ready=True@now", "done, not ready": "Ready=False@now",
			"in progress": "Ready=False@now Reconciling=True@now", "blocked": "Ready=False@now Stalled=True@now",
		},
		"ready": {
			"done, ready": "Ready=True@then", "done, not ready": "Ready=False@now",
			"in progress": "Ready=False@now Reconciling=True@now", "blocked": "Ready=False@now Stalled=True@now",
		},
		"in progress": {
			"done, ready": "Ready=True@now", "done, not ready": "Ready=False@then",
			"in progress": "Ready=False@then Reconciling=True@then", "blocked": "Ready=False@then Stalled=True@now",
		},
		"stalled": {
			"done, ready": "Ready=True@now", "done, not ready": "Ready=False@then",
			"in progress": "Ready=False@then Reconciling=True@now", "blocked": "Ready=False@then Stalled=True@then",
		},
		"reconciling and stalld": {
			"done, ready": "Ready=True@now", "done, not ready": "Ready=False@then",
			"in progress": "Ready=False@then Reconciling=True@then", "blocked": "Ready=False@then Stalled=True@then",
		},
		"ready with another": {
			"done, ready": "Ready=True@then GatesPassed=True@then", "done, not ready": "Ready=False@now GatesPassed=True@then",
			"in progress": "Ready=False@now Reconciling=True@now GatesPassed=True@then",
			"blocked":     "Ready=False@now Stalled=True@now GatesPassed=True@then",
		},
	}
	for prev, conds := range previous {
		for name, d := range decisions {
			t.Run(prev+" then "+name, func(t *testing.T) {
				got := append([]metav1.Condition(nil), conds...)
				Summarize(&got, 3, now, d.p, d.status, "Why", "what happened")
				if r := render(got); r != want[prev][name] {
					t.Fatalf("got %s\nwant %s", r, want[prev][name])
				}
				for _, c := range got {
					if c.Type == Ready || c.Type == Reconciling || c.Type == Stalled {
						if c.Reason != "Why" || c.ObservedGeneration != 3 {
							t.Fatalf("%s was not updated: %+v", c.Type, c)
						}
					}
				}
			})
		}
	}
}

func TestLongMessagesAreShortened(t *testing.T) {
	var conds []metav1.Condition
	Set(&conds, 1, now, Ready, metav1.ConditionFalse, "Why", strings.Repeat("é", MaxMessage+10))
	if n := len([]rune(conds[0].Message)); n != MaxMessage || !strings.HasSuffix(conds[0].Message, "...") {
		t.Fatalf("message of %d characters", n)
	}
}
