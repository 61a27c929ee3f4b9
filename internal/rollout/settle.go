package rollout

import (
	"time"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// Candidate is the version the promotion rules made the candidate of a canary, and the promotion
// that waits for it.
type Candidate struct {
	Number int64
	UID    string
	Reason mlv1.HistoryReason
	By     string
	Floor  int64
}

// Decided is what the promotion rules decided, as far as the rollout is concerned.
type Decided struct {
	// Candidate is the canary's candidate; nil when there is none.
	Candidate *Candidate
	// Production and ProductionUID are the Production version after the decision.
	Production    *int64
	ProductionUID string
	// PromotedAnew says the decision's new Production version came from the gates or a request
	// (the promotions a bake watches), not from a rollback or a restoration.
	PromotedAnew bool
	// Ended says what ended the recorded rollout, for its message when the decision ends it.
	Ended string
}

// Settle is the model's status.rollout after a decision: advanced is the recorded rollout prev
// moved on by this reconcile (Advance), verdict its verdict, and recorded the Production version
// the model recorded before the decision. It is a new canary for a new candidate; the advanced
// canary for the same one; for a canary that passed and whose candidate is now Production, its
// bake or its success; for one that failed, or that the decision ended otherwise, its abort; a
// bake for a version the gates or a request just made Production in place of another; and the
// rollout as it was when nothing changed. The candidate's weight is left to the caller, which
// knows what the Deployments or the route give it. It never mutates its inputs.
func Settle(spec *mlv1.Rollout, prev, advanced *mlv1.RolloutStatus, verdict Verdict, recorded *int64, d Decided,
	now time.Time) *mlv1.RolloutStatus {
	if c := d.Candidate; c != nil {
		st := advanced.DeepCopy()
		if !prev.Canary() || prev.VersionUID != c.UID || st == nil {
			begun := Begin(spec, c.Number, c.UID, d.Production, now)
			st = &begun
		}
		st.Reason, st.RequestedBy, st.Floor = c.Reason, c.By, c.Floor
		return st
	}
	st := prev
	if advanced == nil && prev.Active() {
		// spec.serving.rollout (or spec.serving) was removed under it
		st = prev.DeepCopy()
		st.Phase, st.Weight = mlv1.RolloutAborted, 0
		st.Message = "Ended: spec.serving.rollout no longer asks for it"
	}
	if advanced != nil {
		st = advanced.DeepCopy()
		switch {
		case verdict == Failed:
			st.Phase, st.Weight = mlv1.RolloutAborted, 0
		case prev.Canary() && verdict == Passed && sameVersion(d.Production, &st.Version):
			if spec.Bake != nil {
				baked := BeginBake(spec, st.Version, st.VersionUID, st.PreviousVersion, now)
				baked.StartTime, baked.Reason, baked.RequestedBy, baked.Floor = st.StartTime, st.Reason, st.RequestedBy, st.Floor
				st = &baked
			} else {
				st.Phase = mlv1.RolloutSucceeded
			}
			st.Weight, st.Step = 100, nil
		case prev.Phase == mlv1.RolloutBaking && verdict == Passed:
			st.Phase = mlv1.RolloutSucceeded
		case !sameVersion(d.Production, recorded) && prev.Phase == mlv1.RolloutBaking:
			st.Phase, st.Message = mlv1.RolloutAborted, d.Ended
		case prev.Canary():
			st.Phase, st.Weight, st.Message = mlv1.RolloutAborted, 0, d.Ended
		}
	}
	// A bake watches a version the gates or a request put in place of another; the first
	// Production version has nothing to fall back to.
	if !st.Active() && spec != nil && spec.Bake != nil && recorded != nil && d.Production != nil &&
		!sameVersion(d.Production, recorded) && d.PromotedAnew {
		baked := BeginBake(spec, *d.Production, d.ProductionUID, recorded, now)
		return &baked
	}
	return st
}

func sameVersion(a, b *int64) bool { return a != nil && b != nil && *a == *b }
