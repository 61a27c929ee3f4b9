package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func TestSettle(t *testing.T) {
	spec := canary()
	baking := canary()
	baking.Bake = &metav1.Duration{Duration: 5 * time.Minute}
	now := t0.Add(time.Hour)
	one, two, three := int64(1), int64(2), int64(3)
	running := Begin(spec, 2, "uid-2", &one, t0)
	running.Step, running.StepStartTime = new(int32(1)), timeRef(t0.Add(2*time.Minute))
	baked := BeginBake(baking, 2, "uid-2", &one, t0)
	candidate2 := &Candidate{Number: 2, UID: "uid-2", Reason: mlv1.ReasonGatesPassed, By: mlv1.ByOperator, Floor: 2}
	candidate3 := &Candidate{Number: 3, UID: "uid-3", Reason: mlv1.ReasonManualRequest, By: "alice", Floor: 3}
	for _, tc := range []struct {
		name               string
		spec               *mlv1.Rollout
		prev, advanced     *mlv1.RolloutStatus
		verdict            Verdict
		recorded           *int64
		decided            Decided
		phase              mlv1.RolloutPhase
		version            int64
		step               *int32
		weight             int32
		message, requester string
	}{{
		name: "a new candidate begins its first step", spec: spec, recorded: &one,
		decided: Decided{Candidate: candidate2, Production: &one},
		phase:   mlv1.RolloutProgressing, version: 2, step: new(int32(0)),
		message: "Step 1 of 2: starting the canary pods of version 2", requester: mlv1.ByOperator,
	}, {
		name: "the same candidate goes on where the analysis moved it", spec: spec, prev: &running, advanced: &running,
		recorded: &one, decided: Decided{Candidate: candidate2, Production: &one},
		phase: mlv1.RolloutProgressing, version: 2, step: new(int32(1)), requester: mlv1.ByOperator,
	}, {
		name: "a newer candidate replaces the one that ran, from its first step", spec: spec, prev: &running,
		advanced: &running, recorded: &one, decided: Decided{Candidate: candidate3, Production: &one},
		phase: mlv1.RolloutProgressing, version: 3, step: new(int32(0)), requester: "alice",
		message: "Step 1 of 2: starting the canary pods of version 3",
	}, {
		name: "a failed analysis aborts the canary and takes its weight", spec: spec, prev: &running,
		advanced: withMessage(running, "Analysis failed: error-rate 0.5 is outside <= 0.01"), verdict: Failed,
		recorded: &one, decided: Decided{Production: &one},
		phase: mlv1.RolloutAborted, version: 2, step: new(int32(1)), message: "Analysis failed: error-rate 0.5 is outside <= 0.01",
	}, {
		name: "a passed canary whose candidate is Production succeeds at full weight", spec: spec, prev: &running,
		advanced: &running, verdict: Passed, recorded: &one, decided: Decided{Production: &two, ProductionUID: "uid-2"},
		phase: mlv1.RolloutSucceeded, version: 2, weight: 100,
	}, {
		name: "a passed canary with a bake bakes its candidate", spec: baking, prev: &running, advanced: &running,
		verdict: Passed, recorded: &one, decided: Decided{Production: &two, ProductionUID: "uid-2"},
		phase: mlv1.RolloutBaking, version: 2, weight: 100, message: "Baking: waiting for version 2 to serve on every pod",
	}, {
		name: "a canary that another promotion ended is aborted with what ended it", spec: spec, prev: &running,
		advanced: &running, recorded: &one,
		decided: Decided{Production: &one, Ended: "Ended: version 1 became Production at once (Rollback)"},
		phase:   mlv1.RolloutAborted, version: 2, step: new(int32(1)), message: "Ended: version 1 became Production at once (Rollback)",
	}, {
		name: "a canary whose rollout was removed from the spec is aborted", spec: nil, prev: &running, recorded: &one,
		decided: Decided{Production: &two},
		phase:   mlv1.RolloutAborted, version: 2, step: new(int32(1)), message: "Ended: spec.serving.rollout no longer asks for it",
	}, {
		name: "a bake that passed succeeds", spec: baking, prev: &baked, advanced: &baked, verdict: Passed,
		recorded: &two, decided: Decided{Production: &two},
		phase: mlv1.RolloutSucceeded, version: 2, message: "Baking: waiting for version 2 to serve on every pod",
	}, {
		name: "a bake whose version a rollback replaced is aborted", spec: baking, prev: &baked, advanced: &baked,
		recorded: &two, decided: Decided{Production: &one, Ended: "Ended: version 1 became Production at once (Rollback)"},
		phase: mlv1.RolloutAborted, version: 2, message: "Ended: version 1 became Production at once (Rollback)",
	}, {
		name: "a promotion by the gates in place of another version is baked", spec: baking, recorded: &two,
		decided: Decided{Production: &three, ProductionUID: "uid-3", PromotedAnew: true},
		phase:   mlv1.RolloutBaking, version: 3, message: "Baking: waiting for version 3 to serve on every pod",
	}, {
		name: "a rollback is not baked", spec: baking, recorded: &two, decided: Decided{Production: &one},
	}, {
		name: "the first Production version is not baked", spec: baking,
		decided: Decided{Production: &one, PromotedAnew: true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var before *mlv1.RolloutStatus
			if tc.prev != nil {
				before = tc.prev.DeepCopy()
			}
			got := Settle(tc.spec, tc.prev, tc.advanced, tc.verdict, tc.recorded, tc.decided, now)
			if tc.phase == "" {
				if got != nil {
					t.Fatalf("got a rollout %+v, want none", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("no rollout, want phase %s", tc.phase)
			}
			if got.Phase != tc.phase || got.Version != tc.version || got.Weight != tc.weight ||
				(tc.step == nil) != (got.Step == nil) || tc.step != nil && *got.Step != *tc.step {
				t.Errorf("phase %s, version %d, step %v, weight %d; want %s, %d, %v, %d",
					got.Phase, got.Version, got.Step, got.Weight, tc.phase, tc.version, tc.step, tc.weight)
			}
			if tc.message != "" && got.Message != tc.message {
				t.Errorf("message %q, want %q", got.Message, tc.message)
			}
			if tc.requester != "" && got.RequestedBy != tc.requester {
				t.Errorf("requested by %q, want %q", got.RequestedBy, tc.requester)
			}
			if tc.prev != nil && !equalStatus(before, tc.prev) {
				t.Errorf("Settle changed the recorded rollout")
			}
		})
	}
}

func withMessage(st mlv1.RolloutStatus, msg string) *mlv1.RolloutStatus {
	st.Message = msg
	return &st
}

func equalStatus(a, b *mlv1.RolloutStatus) bool {
	return a.Phase == b.Phase && a.Version == b.Version && a.Weight == b.Weight && a.Message == b.Message
}
