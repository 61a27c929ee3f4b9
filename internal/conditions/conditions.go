// Package conditions sets the status conditions of Podium's objects with the semantics kstatus,
// Argo CD and Flux rely on: Ready summarises the object; Reconciling (still in progress) and
// Stalled (cannot progress without a change) never stand together; conditions are kept sorted,
// Ready first; messages are bounded; and transition times come from the caller's clock, so that a
// status computed twice from the same world is the same status.
package conditions

import (
	"cmp"
	"slices"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kstatus condition types.
const (
	Ready       = "Ready"
	Reconciling = "Reconciling"
	Stalled     = "Stalled"
)

// MaxMessage is the longest condition message, in characters; longer ones are shortened.
const MaxMessage = 4096

// Progress says where the object stands, for the kstatus conditions that go with Ready.
type Progress int

const (
	// Done: the object is reconciled as far as it can be; neither Reconciling nor Stalled.
	Done Progress = iota
	// InProgress: Ready=False and Reconciling=True, with Ready's reason and message.
	InProgress
	// Blocked: Ready=False and Stalled=True: it cannot progress until something changes.
	Blocked
)

// Summarize sets Ready, and Reconciling or Stalled as p says, removing the one that does not hold.
func Summarize(conds *[]metav1.Condition, generation int64, now time.Time, p Progress,
	ready metav1.ConditionStatus, reason, message string) {
	if p != Done {
		ready = metav1.ConditionFalse
	}
	Set(conds, generation, now, Ready, ready, reason, message)
	switch p {
	case InProgress:
		Set(conds, generation, now, Reconciling, metav1.ConditionTrue, reason, message)
		Remove(conds, Stalled)
	case Blocked:
		Set(conds, generation, now, Stalled, metav1.ConditionTrue, reason, message)
		Remove(conds, Reconciling)
	default:
		Remove(conds, Reconciling)
		Remove(conds, Stalled)
	}
}

// Set sets one condition. Its transition time is now when its status changes, and is kept
// otherwise; its message is shortened to MaxMessage.
func Set(conds *[]metav1.Condition, generation int64, now time.Time, t string, status metav1.ConditionStatus,
	reason, message string) {
	c := metav1.Condition{Type: t, Status: status, Reason: reason, Message: shorten(message),
		ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now.Truncate(time.Second))}
	if old := meta.FindStatusCondition(*conds, t); old != nil && old.Status == status {
		c.LastTransitionTime = old.LastTransitionTime
	}
	meta.RemoveStatusCondition(conds, t)
	*conds = append(*conds, c)
	sortConditions(*conds)
}

// Remove removes a condition.
func Remove(conds *[]metav1.Condition, t string) {
	meta.RemoveStatusCondition(conds, t)
}

// sortConditions orders Ready, Reconciling and Stalled first, then the others by type.
func sortConditions(conds []metav1.Condition) {
	rank := func(t string) int {
		switch t {
		case Ready:
			return 0
		case Reconciling:
			return 1
		case Stalled:
			return 2
		}
		return 3
	}
	slices.SortStableFunc(conds, func(a, b metav1.Condition) int {
		return cmp.Or(cmp.Compare(rank(a.Type), rank(b.Type)), cmp.Compare(a.Type, b.Type))
	})
}

func shorten(msg string) string {
	if utf8.RuneCountInString(msg) <= MaxMessage {
		return msg
	}
	return string([]rune(msg)[:MaxMessage-3]) + "..."
}
