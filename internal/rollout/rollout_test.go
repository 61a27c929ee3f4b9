package rollout

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)

func num(s string) *mlv1.Number { n := mlv1.Number(s); return &n }

// canary is the example: 10% for 2m, then 50% for 5m, error rate at most 0.01 with two
// failures tolerated, measured every 30s.
func canary() *mlv1.Rollout {
	return &mlv1.Rollout{
		Strategy: mlv1.RolloutCanary,
		Steps: []mlv1.RolloutStep{
			{Weight: 10, Duration: metav1.Duration{Duration: 2 * time.Minute}},
			{Weight: 50, Duration: metav1.Duration{Duration: 5 * time.Minute}},
		},
		Analysis: &mlv1.Analysis{
			Prometheus:        mlv1.Prometheus{Address: "http://prometheus:9090"},
			Interval:          metav1.Duration{Duration: 30 * time.Second},
			InconclusiveLimit: 3,
			Metrics:           []mlv1.AnalysisMetric{{Name: "error-rate", Query: "q", Max: num("0.01"), FailureLimit: 2}},
		},
	}
}

// run drives a rollout: at each tick the canary is available, and the analysis measures when due,
// the value that values gives for that time.
type run struct {
	spec    *mlv1.Rollout
	st      mlv1.RolloutStatus
	now     time.Time
	serving *int64
	values  func(time.Time) (float64, error)
	// held says whether a person holds the canary at a time; never when nil.
	held   func(time.Time) bool
	ticked bool
}

func newRun(spec *mlv1.Rollout) *run {
	prev := int64(1)
	return &run{spec: spec, st: Begin(spec, 2, "uid-2", &prev, t0), now: t0,
		values: func(time.Time) (float64, error) { return 0.001, nil }}
}

// until advances time a second at a time, up to limit after the last tick, until the rollout
// concludes. Each step of a canary begins a tick after the previous one ends, when the controller
// sees the canary pods of the new step serve; the first measurement of a step comes a tick after
// it begins.
func (r *run) until(t *testing.T, limit time.Duration) Verdict {
	t.Helper()
	end := r.now.Add(limit)
	for {
		if r.ticked {
			r.now = r.now.Add(time.Second)
		}
		r.ticked = true
		obs := Observation{Now: r.now, CanaryAvailable: true, Serving: r.serving, Held: r.held != nil && r.held(r.now)}
		if Due(r.spec, &r.st, r.now) {
			v, err := r.values(r.now)
			obs.Measured = takenFor(&r.st, r.now, Measurement{Name: "error-rate", Value: v, Err: err})
		}
		var verdict Verdict
		r.st, verdict = Advance(r.spec, r.st, obs)
		if verdict != Undecided || !r.now.Before(end) {
			return verdict
		}
	}
}

func TestACanaryWithHealthyMetricsPassesAfterEveryStep(t *testing.T) {
	r := newRun(canary())
	if v := r.until(t, 6*time.Minute+59*time.Second); v != Undecided {
		t.Fatalf("concluded %v before the steps' 7 minutes were up: %s", v, r.st.Message)
	}
	if got := *r.st.Step; got != 1 {
		t.Fatalf("step %d after 2 minutes, want the second (1)", got)
	}
	if v := r.until(t, 2*time.Second); v != Passed {
		t.Fatalf("verdict %v after 7 minutes, want Passed: %s", v, r.st.Message)
	}
	m := r.st.Metrics[0]
	if m.Failed != 0 || m.Passed < 14 || m.Bound != "<= 0.01" || *m.Value != "0.001" {
		t.Errorf("metric status %+v", m)
	}
	if !strings.Contains(r.st.Message, "Passed 2 canary steps: error-rate 0.001 <= 0.01") {
		t.Errorf("message %q", r.st.Message)
	}
}

func TestACanaryFailsOnTheMeasurementPastItsFailureLimit(t *testing.T) {
	r := newRun(canary())
	r.values = func(time.Time) (float64, error) { return 0.034, nil }
	if v := r.until(t, 10*time.Minute); v != Failed {
		t.Fatalf("verdict %v, want Failed", v)
	}
	if m := r.st.Metrics[0]; m.Failed != 3 {
		t.Errorf("failed %d times, want 3 (failureLimit 2 tolerates two)", m.Failed)
	}
	if want := "Analysis failed: error-rate 0.034 is outside <= 0.01 (failed 3 times, the limit is 2)"; r.st.Message != want {
		t.Errorf("message %q, want %q", r.st.Message, want)
	}
	if got := r.now.Sub(t0); got != 61*time.Second {
		t.Errorf("failed after %s, want the third measurement, at 61s", got)
	}
}

func TestFailuresWithinTheLimitDoNotStopTheCanary(t *testing.T) {
	r := newRun(canary())
	r.values = func(now time.Time) (float64, error) {
		if now.Sub(t0) <= 31*time.Second {
			return 0.5, nil // two failures, at 1s and 31s
		}
		return 0.001, nil
	}
	if v := r.until(t, 8*time.Minute); v != Passed {
		t.Fatalf("verdict %v, want Passed: %s", v, r.st.Message)
	}
	if m := r.st.Metrics[0]; m.Failed != 2 {
		t.Errorf("failed %d times, want 2", m.Failed)
	}
}

func TestInconclusiveMeasurementsPauseAndTheStepStartsAgain(t *testing.T) {
	r := newRun(canary())
	noData := errors.New("no data")
	r.values = func(now time.Time) (float64, error) {
		if d := now.Sub(t0); d > 60*time.Second && d < 120*time.Second {
			return 0, noData // 61s and 91s: two inconclusive, under the limit of three
		}
		return 0.001, nil
	}
	r.until(t, 61*time.Second)
	if r.st.Phase != mlv1.RolloutPaused || !strings.Contains(r.st.Message, "error-rate: no data") {
		t.Fatalf("phase %s, message %q; want Paused with the reason", r.st.Phase, r.st.Message)
	}
	r.until(t, 60*time.Second) // to 121s: data again
	if r.st.Phase != mlv1.RolloutProgressing || !r.st.StepStartTime.Time.Equal(t0.Add(121*time.Second)) || *r.st.Step != 0 {
		t.Fatalf("phase %s, step %d started %s; want Progressing, the first step again from 121s",
			r.st.Phase, *r.st.Step, r.st.StepStartTime)
	}
	if m := r.st.Metrics[0]; m.Inconclusive != 0 {
		t.Errorf("inconclusive %d after a conclusive measurement, want 0", m.Inconclusive)
	}
}

func TestInconclusiveMeasurementsPastTheLimitAbort(t *testing.T) {
	r := newRun(canary())
	r.values = func(time.Time) (float64, error) { return 0, errors.New("Prometheus is unreachable") }
	if v := r.until(t, 10*time.Minute); v != Failed {
		t.Fatalf("verdict %v, want Failed", v)
	}
	if !strings.Contains(r.st.Message, "error-rate was inconclusive 3 times in a row (the limit is 3): Prometheus is unreachable") {
		t.Errorf("message %q", r.st.Message)
	}
}

func TestTheStepWaitsForTheCanaryPods(t *testing.T) {
	spec := canary()
	st := Begin(spec, 2, "uid-2", nil, t0)
	st, v := Advance(spec, st, Observation{Now: t0.Add(time.Hour)})
	if v != Undecided || st.StepStartTime != nil || Due(spec, &st, t0.Add(time.Hour)) {
		t.Fatalf("verdict %v, step start %v: nothing may be measured or timed before the canary pods serve", v, st.StepStartTime)
	}
	if _, v = Advance(spec, st, Observation{Now: t0.Add(time.Hour), CanaryFailed: true}); v != Failed {
		t.Fatalf("verdict %v when the canary pods miss their deadline, want Failed", v)
	}
}

func TestACanaryWithoutAnalysisFollowsTheClock(t *testing.T) {
	spec := canary()
	spec.Analysis = nil
	r := newRun(spec)
	if v := r.until(t, 8*time.Minute); v != Passed {
		t.Fatalf("verdict %v, want Passed after the steps' durations", v)
	}
	if got := r.now.Sub(t0); got != 7*time.Minute+time.Second {
		t.Errorf("passed after %s", got)
	}
}

func TestABakeStartsWhenTheVersionServesAndPassesWhenItsTimeIsUp(t *testing.T) {
	spec := canary()
	spec.Bake = &metav1.Duration{Duration: 10 * time.Minute}
	prev := int64(1)
	r := &run{spec: spec, st: BeginBake(spec, 2, "uid-2", &prev, t0), now: t0,
		values: func(time.Time) (float64, error) { return 0.001, nil }}
	if v := r.until(t, 20*time.Minute); v != Undecided || r.st.StepStartTime != nil {
		t.Fatalf("verdict %v before version 2 serves, want Undecided with the clock stopped", v)
	}
	r.serving = new(int64(2))
	if v := r.until(t, 11*time.Minute); v != Passed {
		t.Fatalf("verdict %v, want Passed", v)
	}
	if got := r.now.Sub(r.st.StepStartTime.Time); got != 10*time.Minute {
		t.Errorf("baked %s, want 10m", got)
	}
}

func TestABakeFailsLikeACanary(t *testing.T) {
	spec := canary()
	spec.Bake = &metav1.Duration{Duration: 10 * time.Minute}
	r := &run{spec: spec, st: BeginBake(spec, 2, "uid-2", nil, t0), now: t0, serving: new(int64(2)),
		values: func(time.Time) (float64, error) { return 0.2, nil }}
	if v := r.until(t, 10*time.Minute); v != Failed {
		t.Fatalf("verdict %v, want Failed", v)
	}
}

func TestWakeIsTheNextMeasurementOrTheEndOfTheStep(t *testing.T) {
	spec := canary()
	st := Begin(spec, 2, "", nil, t0)
	if w := Wake(spec, &st, t0); w != 0 {
		t.Errorf("wake %s before the step begins, want 0 (the canary's pods wake the model)", w)
	}
	st.StepStartTime = &metav1.Time{Time: t0}
	st.LastMeasurementTime = &metav1.Time{Time: t0.Add(100 * time.Second)}
	if w := Wake(spec, &st, t0.Add(110*time.Second)); w != 10*time.Second {
		t.Errorf("wake %s, want 10s: the step ends at 120s, before the measurement at 130s", w)
	}
	spec.Analysis = nil
	if w := Wake(spec, &st, t0.Add(130*time.Second)); w != time.Second {
		t.Errorf("wake %s past the step's end, want the floor of 1s", w)
	}
}

func TestReplicas(t *testing.T) {
	for _, tc := range []struct {
		name                               string
		replicas, weight, canary, realized int32
	}{
		{"10% of 4 pods is one pod, a quarter of them", 4, 10, 1, 25},
		{"50% of 4 pods is two", 4, 50, 2, 50},
		{"1% of 100 pods is one", 100, 1, 1, 1},
		{"a weight rounds up", 3, 50, 2, 67},
		{"100% is every pod", 4, 100, 4, 100},
		{"a canary has at least one pod", 0, 10, 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CanaryReplicas(tc.replicas, tc.weight)
			if got != tc.canary {
				t.Errorf("CanaryReplicas(%d, %d) = %d, want %d", tc.replicas, tc.weight, got, tc.canary)
			}
			if w := Weight(tc.replicas, got); w != tc.realized {
				t.Errorf("Weight = %d, want %d", w, tc.realized)
			}
		})
	}
}

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max *mlv1.Number
		want     string
	}{
		{"max only", nil, num("0.01"), "<= 0.01"},
		{"min only", num("0.8"), nil, ">= 0.8"},
		{"both", num("0.8"), num("1"), "in [0.8, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Bound(mlv1.AnalysisMetric{Min: tc.min, Max: tc.max}); got != tc.want {
				t.Errorf("Bound = %q, want %q", got, tc.want)
			}
		})
	}
}

// shadowed is canary with a 5m shadow phase copying 100% of the requests, on an HTTPRoute.
func shadowed() *mlv1.Rollout {
	spec := canary()
	spec.Shadow = &mlv1.Shadow{Percent: 100, Duration: metav1.Duration{Duration: 5 * time.Minute}}
	spec.Traffic = &mlv1.Traffic{GatewayAPI: &mlv1.GatewayAPITraffic{ParentRefs: []mlv1.ParentReference{{Name: "public-gw"}}}}
	return spec
}

func TestACanaryWithAShadowBeginsShadowingThenRunsEveryStep(t *testing.T) {
	r := newRun(shadowed())
	if r.st.Phase != mlv1.RolloutShadowing || r.st.Step != nil {
		t.Fatalf("phase %s, step %v at the start; want Shadowing without a step", r.st.Phase, r.st.Step)
	}
	if w, m := StepWeight(r.spec, &r.st), MirrorPercent(r.spec, &r.st); w != 0 || m != 100 {
		t.Fatalf("weight %d, mirror %d during the shadow; want 0 and 100", w, m)
	}
	if v := r.until(t, 4*time.Minute+59*time.Second); v != Undecided || r.st.Phase != mlv1.RolloutShadowing {
		t.Fatalf("verdict %v, phase %s before the shadow's 5 minutes were up: %s", v, r.st.Phase, r.st.Message)
	}
	if !strings.HasPrefix(r.st.Message, "Shadow: 100% of the requests are copied to version 2") {
		t.Errorf("message %q", r.st.Message)
	}
	if m := r.st.Metrics[0]; m.Passed < 9 {
		t.Errorf("the shadow measured %d times, want every 30s", m.Passed)
	}
	r.until(t, time.Second)
	if r.st.Phase != mlv1.RolloutProgressing || r.st.Step == nil || *r.st.Step != 0 || r.st.StepStartTime != nil {
		t.Fatalf("phase %s, step %v, step start %v after the shadow; want the first step, waiting for its pods",
			r.st.Phase, r.st.Step, r.st.StepStartTime)
	}
	if w, m := StepWeight(r.spec, &r.st), MirrorPercent(r.spec, &r.st); w != 10 || m != 0 {
		t.Fatalf("weight %d, mirror %d in the first step; want 10 and 0", w, m)
	}
	if v := r.until(t, 6*time.Minute+59*time.Second); v != Undecided {
		t.Fatalf("concluded %v before the steps' 7 minutes were up: %s", v, r.st.Message)
	}
	if v := r.until(t, 3*time.Second); v != Passed {
		t.Fatalf("verdict %v after the shadow and the steps, want Passed: %s", v, r.st.Message)
	}
}

func TestAShadowFailsAndPausesLikeAStep(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values func(time.Time) (float64, error)
		after  time.Duration
		want   Verdict
		phase  mlv1.RolloutPhase
	}{
		{"a shadow fails at its third failed measurement", func(time.Time) (float64, error) { return 0.2, nil },
			61 * time.Second, Failed, mlv1.RolloutShadowing},
		{"an inconclusive shadow pauses in its phase", func(time.Time) (float64, error) { return 0, errors.New("no data") },
			31 * time.Second, Undecided, mlv1.RolloutPaused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(shadowed())
			r.values = tc.values
			if v := r.until(t, tc.after); v != tc.want || r.st.Phase != tc.phase {
				t.Fatalf("verdict %v, phase %s; want %v, %s: %s", v, r.st.Phase, tc.want, tc.phase, r.st.Message)
			}
			if !r.st.Shadowing() {
				t.Fatalf("step %v: the rollout left its shadow phase", r.st.Step)
			}
		})
	}
}

func TestAPausedShadowResumesShadowingFromTheStart(t *testing.T) {
	r := newRun(shadowed())
	r.values = func(now time.Time) (float64, error) {
		if d := now.Sub(t0); d > 60*time.Second && d < 90*time.Second {
			return 0, errors.New("no data")
		}
		return 0.001, nil
	}
	r.until(t, 61*time.Second)
	if r.st.Phase != mlv1.RolloutPaused || !strings.HasPrefix(r.st.Message, "Paused") {
		t.Fatalf("phase %s, message %q; want Paused", r.st.Phase, r.st.Message)
	}
	r.until(t, 30*time.Second)
	if r.st.Phase != mlv1.RolloutShadowing || !r.st.StepStartTime.Time.Equal(t0.Add(91*time.Second)) {
		t.Fatalf("phase %s from %s; want Shadowing again from 91s", r.st.Phase, r.st.StepStartTime)
	}
}

func TestAShadowRemovedFromTheSpecMovesToTheFirstStep(t *testing.T) {
	spec := shadowed()
	st := Begin(spec, 2, "uid-2", nil, t0)
	spec.Shadow = nil
	st, v := Advance(spec, st, Observation{Now: t0, CanaryAvailable: true})
	if v != Undecided || st.Phase != mlv1.RolloutProgressing || st.Step == nil || *st.Step != 0 {
		t.Fatalf("verdict %v, phase %s, step %v; want the first step", v, st.Phase, st.Step)
	}
}

func TestWakeEndsTheShadow(t *testing.T) {
	spec := shadowed()
	spec.Analysis = nil
	st := Begin(spec, 2, "", nil, t0)
	st.StepStartTime = &metav1.Time{Time: t0}
	if w := Wake(spec, &st, t0.Add(time.Minute)); w != 4*time.Minute {
		t.Errorf("wake %s a minute into a 5m shadow, want 4m", w)
	}
}

func TestPodsPerTrack(t *testing.T) {
	gateway := shadowed()
	replicaWeighted := canary()
	shadowing := Begin(gateway, 2, "", nil, t0)
	firstStep := Begin(replicaWeighted, 2, "", nil, t0)
	secondStep := firstStep
	secondStep.Step = new(int32(1))
	for _, tc := range []struct {
		name           string
		spec           *mlv1.Rollout
		st             mlv1.RolloutStatus
		available      int32 // canary pods that serve the candidate
		canary, stable int32
	}{
		{"a shadow of 100% runs as many candidate pods as stable ones", gateway, shadowing, 4, 4, 4},
		{"with the Gateway API the stable track keeps every pod", gateway, secondStep, 0, 2, 4},
		{"with replica weights the tracks share the pods", replicaWeighted, firstStep, 1, 1, 3},
		{"the second step of replica weights", replicaWeighted, secondStep, 2, 2, 2},
		{"the stable track keeps every pod until a canary pod serves", replicaWeighted, firstStep, 0, 1, 4},
		{"a step that grows the canary shrinks the stable track only by the canary pods that serve", replicaWeighted, secondStep, 1, 2, 3},
		{"a canary with more pods than its step, from the step before, shrinks the stable track by the step's", replicaWeighted, firstStep, 3, 1, 3},
		{"a last step of 100% leaves the stable track no pod once the canary serves on every one", lastStepOf100(), hundred(), 4, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Pods(tc.spec, 4, &tc.st); got != tc.canary {
				t.Errorf("Pods = %d, want %d", got, tc.canary)
			}
			if got := StablePods(tc.spec, 4, &tc.st, tc.available); got != tc.stable {
				t.Errorf("StablePods = %d, want %d", got, tc.stable)
			}
			for available := range tc.canary + 1 {
				if got := StablePods(tc.spec, 4, &tc.st, available) + available; got < 4 {
					t.Errorf("with %d canary pods serving, %d pods serve in all, fewer than the 4 replicas", available, got)
				}
			}
		})
	}
}

// takenFor stamps measurements as the controller does: taken at at, for the rollout st.
func takenFor(st *mlv1.RolloutStatus, at time.Time, ms ...Measurement) []Measurement {
	out := slices.Clone(ms)
	for i := range out {
		out[i].For, out[i].At = TargetOf(st), at
	}
	return out
}

// lastStepOf100 is the CRD's own example of steps: 10%, 50%, then 100%.
func lastStepOf100() *mlv1.Rollout {
	spec := canary()
	spec.Steps = append(spec.Steps, mlv1.RolloutStep{Weight: 100, Duration: metav1.Duration{Duration: time.Minute}})
	return spec
}

// hundred is a rollout of lastStepOf100 at its last step.
func hundred() mlv1.RolloutStatus {
	st := Begin(lastStepOf100(), 2, "", nil, t0)
	st.Step = new(int32(2))
	return st
}

// heldUntil holds a canary from the start until d.
func heldUntil(d time.Duration) func(time.Time) bool {
	return func(now time.Time) bool { return now.Sub(t0) < d }
}

func TestAHeldCanary(t *testing.T) {
	noData := func(time.Time) (float64, error) { return 0, errors.New("no data") }
	withoutAnalysis := func() *mlv1.Rollout { spec := canary(); spec.Analysis = nil; return spec }
	for _, tc := range []struct {
		name    string
		spec    func() *mlv1.Rollout
		values  func(time.Time) (float64, error)
		serving *int64
		after   time.Duration
		want    Verdict
		phase   mlv1.RolloutPhase
		message string // the message's beginning
	}{
		{"a held step does not advance past its duration, and its candidate is not promoted", canary, nil, nil,
			20 * time.Minute, Undecided, mlv1.RolloutPaused,
			"Paused by the annotation ml.podium.dev/pause-rollout: Step 1 of 2: 10% of the pods run version 2; " +
				"remove the annotation (kubectl podium resume) to resume, and the step starts again from its beginning"},
		{"a held step without analysis does not advance either", withoutAnalysis, nil, nil,
			20 * time.Minute, Undecided, mlv1.RolloutPaused, "Paused by the annotation ml.podium.dev/pause-rollout: Step 1 of 2"},
		{"a held shadow keeps copying the requests", shadowed, nil, nil,
			20 * time.Minute, Undecided, mlv1.RolloutPaused,
			"Paused by the annotation ml.podium.dev/pause-rollout: Shadow: 100% of the requests are copied to version 2"},
		{"a failure past the failureLimit still aborts a held canary", canary,
			func(time.Time) (float64, error) { return 0.034, nil }, nil,
			61 * time.Second, Failed, mlv1.RolloutPaused, "Analysis failed: error-rate 0.034 is outside <= 0.01"},
		{"an inconclusive analysis past its limit still aborts a held canary", canary, noData, nil,
			20 * time.Minute, Failed, mlv1.RolloutPaused, "Analysis failed: error-rate was inconclusive 3 times in a row"},
		{"a held canary that is inconclusive too shows the hold, and why the analysis is", canary, noData, nil,
			31 * time.Second, Undecided, mlv1.RolloutPaused,
			"Paused by the annotation ml.podium.dev/pause-rollout: Step 1 of 2: 10% of the pods run version 2; " +
				"remove the annotation (kubectl podium resume) to resume, and the step starts again from its beginning; " +
				"the analysis is inconclusive too: error-rate: no data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(tc.spec())
			r.held = heldUntil(time.Hour)
			if tc.values != nil {
				r.values = tc.values
			}
			if v := r.until(t, tc.after); v != tc.want || r.st.Phase != tc.phase {
				t.Fatalf("verdict %v, phase %s; want %v, %s: %s", v, r.st.Phase, tc.want, tc.phase, r.st.Message)
			}
			if !strings.HasPrefix(r.st.Message, tc.message) {
				t.Errorf("message %q\nwant the beginning %q", r.st.Message, tc.message)
			}
			if r.st.Step != nil && *r.st.Step != 0 {
				t.Errorf("step %d: a held canary moved on", *r.st.Step)
			}
			if w, m := StepWeight(r.spec, &r.st), MirrorPercent(r.spec, &r.st); r.spec.Shadow == nil && (w != 10 || m != 0) {
				t.Errorf("weight %d, mirror %d; want the first step's 10 and 0", w, m)
			}
			if r.spec.Analysis != nil && tc.want == Undecided && r.st.LastMeasurementTime == nil {
				t.Error("a held canary's analysis stopped measuring")
			}
		})
	}
}

func TestAReleasedCanaryStartsItsStepAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec func() *mlv1.Rollout
	}{
		{"with analysis, the step is measured again in full", canary},
		{"without analysis, the step's clock starts again", func() *mlv1.Rollout { spec := canary(); spec.Analysis = nil; return spec }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(tc.spec())
			r.held = heldUntil(5 * time.Minute)
			r.until(t, 5*time.Minute-time.Second)
			if r.st.Phase != mlv1.RolloutPaused {
				t.Fatalf("phase %s while held, want Paused", r.st.Phase)
			}
			r.until(t, time.Second) // released at 5m
			release := t0.Add(5 * time.Minute)
			if r.st.Phase != mlv1.RolloutProgressing || *r.st.Step != 0 || !r.st.StepStartTime.Time.Equal(release) {
				t.Fatalf("phase %s, step %d from %s after the release; want the first step again from %s",
					r.st.Phase, *r.st.Step, r.st.StepStartTime, release)
			}
			r.until(t, 2*time.Minute-time.Second)
			if *r.st.Step != 0 {
				t.Fatalf("step %d before the first step's 2 minutes from the release were up", *r.st.Step)
			}
			r.until(t, 2*time.Second)
			if *r.st.Step != 1 {
				t.Fatalf("step %d 2 minutes after the release, want the second (1): %s", *r.st.Step, r.st.Message)
			}
		})
	}
}

func TestAReleasedCanaryThatIsInconclusiveWaitsForData(t *testing.T) {
	r := newRun(canary())
	r.held = heldUntil(45 * time.Second)
	r.values = func(now time.Time) (float64, error) {
		if d := now.Sub(t0); d > 20*time.Second && d < 40*time.Second {
			return 0, errors.New("no data") // at 31s
		}
		return 0.001, nil
	}
	r.until(t, 50*time.Second)
	if r.st.Phase != mlv1.RolloutPaused || !strings.HasPrefix(r.st.Message,
		"Paused: the analysis is inconclusive; it resumes when measurements come back: error-rate: no data") {
		t.Fatalf("phase %s, message %q after the release; want the analysis's pause", r.st.Phase, r.st.Message)
	}
	r.until(t, 11*time.Second) // data again at 61s
	if r.st.Phase != mlv1.RolloutProgressing || !r.st.StepStartTime.Time.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("phase %s from %s; want Progressing again from 61s", r.st.Phase, r.st.StepStartTime)
	}
}

func TestAHeldCanaryWaitsForItsPodsAndStillFailsOnThem(t *testing.T) {
	spec := canary()
	st := Begin(spec, 2, "uid-2", nil, t0)
	st, v := Advance(spec, st, Observation{Now: t0, Held: true})
	if v != Undecided || st.Phase != mlv1.RolloutPaused || !strings.Contains(st.Message, "Step 1 of 2: its canary pods are starting") {
		t.Fatalf("verdict %v, phase %s, message %q; want Paused while the pods start", v, st.Phase, st.Message)
	}
	if _, v = Advance(spec, st, Observation{Now: t0, Held: true, CanaryFailed: true}); v != Failed {
		t.Fatalf("verdict %v when the held canary's pods miss their deadline, want Failed", v)
	}
}

func TestABakeIsNotHeld(t *testing.T) {
	spec := canary()
	spec.Bake = &metav1.Duration{Duration: 10 * time.Minute}
	r := &run{spec: spec, st: BeginBake(spec, 2, "uid-2", nil, t0), now: t0, serving: new(int64(2)),
		values: func(time.Time) (float64, error) { return 0.001, nil }, held: heldUntil(time.Hour)}
	if v := r.until(t, 11*time.Minute); v != Passed {
		t.Fatalf("verdict %v, phase %s: %s; want Passed after 10m", v, r.st.Phase, r.st.Message)
	}
}

func TestAPauseMessageFitsTheStatus(t *testing.T) {
	spec := canary()
	long := errors.New(strings.Repeat("x", 300))
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	spec.Analysis.Metrics = nil
	measured := make([]Measurement, 0, len(names))
	for _, name := range names {
		spec.Analysis.Metrics = append(spec.Analysis.Metrics, mlv1.AnalysisMetric{Name: name, Query: "q", Max: num("1")})
		measured = append(measured, Measurement{Name: name, Err: long})
	}
	st := Begin(spec, 2, "uid-2", nil, t0)
	st.StepStartTime = timeRef(t0) // its pods serve
	for _, held := range []bool{false, true} {
		got, _ := Advance(spec, st, Observation{Now: t0, CanaryAvailable: true, Measured: takenFor(&st, t0, measured...), Held: held})
		if n := len([]rune(got.Message)); got.Phase != mlv1.RolloutPaused || n > 1024 {
			t.Errorf("held %v: phase %s, a message of %d characters; want Paused, at most 1024", held, got.Phase, n)
		}
	}
}

func TestAFailureOverALimitOfZeroSaysOnce(t *testing.T) {
	r := newRun(canary())
	r.spec.Analysis.Metrics[0].FailureLimit = 0
	r.values = func(time.Time) (float64, error) { return 0.2, nil }
	if v := r.until(t, time.Minute); v != Failed {
		t.Fatalf("verdict %v, want Failed", v)
	}
	if want := "Analysis failed: error-rate 0.2 is outside <= 0.01 (failed once, the limit is 0)"; r.st.Message != want {
		t.Errorf("message %q, want %q", r.st.Message, want)
	}
}

// While Prometheus is down, each of eight metrics carries a long error: the abort that the
// inconclusive limit asks for must still fit the status, or the API server refuses it and the
// canary can never be aborted.
func TestAnAbortOfManyInconclusiveMetricsFitsTheStatus(t *testing.T) {
	spec := canary()
	spec.Analysis.Metrics = nil
	measured := make([]Measurement, 0, 8)
	down := errors.New("cannot reach Prometheus at http://prometheus.monitoring:9090 (" + strings.Repeat("dial tcp: i/o timeout; ", 25) + ")")
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		spec.Analysis.Metrics = append(spec.Analysis.Metrics, mlv1.AnalysisMetric{Name: name, Query: "q", Max: num("1")})
		measured = append(measured, Measurement{Name: name, Err: down})
	}
	prev := int64(1)
	st := Begin(spec, 2, "uid-2", &prev, t0)
	now := t0
	for i := range int(spec.Analysis.InconclusiveLimit) {
		now = now.Add(spec.Analysis.Interval.Duration)
		obs := Observation{Now: now, CanaryAvailable: true}
		if i > 0 {
			obs.Measured = takenFor(&st, now, measured...)
		}
		st, _ = Advance(spec, st, obs)
	}
	now = now.Add(spec.Analysis.Interval.Duration)
	st, verdict := Advance(spec, st, Observation{Now: now, CanaryAvailable: true, Measured: takenFor(&st, now, measured...)})
	if verdict != Failed {
		t.Fatalf("after %d inconclusive measurements the verdict is %v, want Failed: %s", spec.Analysis.InconclusiveLimit, verdict, st.Message)
	}
	if n := len([]rune(st.Message)); n <= maxMessage {
		t.Fatalf("the case no longer builds a long message (%d characters); make its errors longer", n)
	}
	BoundMessages(&st)
	if n := len([]rune(st.Message)); n > maxMessage || !strings.HasPrefix(st.Message, "Analysis failed: a was inconclusive") {
		t.Errorf("status.rollout.message has %d characters (the API server takes %d): %q", n, maxMessage, st.Message)
	}
	for _, ms := range st.Metrics {
		if n := len([]rune(ms.Message)); n > maxMessage {
			t.Errorf("metric %s's message has %d characters", ms.Name, n)
		}
	}
}

// The cache lagged: it showed version 2's canary, or an earlier step, when the measurement was
// taken, while the API server's view, on which it is recorded, has another candidate or step.
// Such a measurement measures something else and must not count, nor a sample from before the step.
func TestOnlyMeasurementsOfTheCandidateInItsStepCount(t *testing.T) {
	spec := canary()
	prev := int64(1)
	st := Begin(spec, 3, "uid-3", &prev, t0)
	st.Step, st.StepStartTime = new(int32(1)), timeRef(t0.Add(2*time.Minute))
	now := t0.Add(3 * time.Minute)
	failing := Measurement{Name: "error-rate", Value: 0.5}
	version2 := st
	version2.VersionUID, version2.Version = "uid-2", 2
	firstStep := st
	firstStep.Step, firstStep.StepStartTime = new(int32(0)), timeRef(t0)
	for name, m := range map[string]Measurement{
		"another candidate's":              takenFor(&version2, now, failing)[0],
		"the candidate's, an earlier step": takenFor(&firstStep, now, failing)[0],
		"one without a target":             failing,
	} {
		t.Run(name, func(t *testing.T) {
			spec.Analysis.Metrics[0].FailureLimit = 0
			got, verdict := Advance(spec, st, Observation{Now: now, CanaryAvailable: true, Measured: []Measurement{m}})
			if verdict != Undecided || got.LastMeasurementTime != nil || got.Metrics[0].Failed != 0 {
				t.Errorf("it counted: verdict %v, last measurement %v, failed %d", verdict, got.LastMeasurementTime, got.Metrics[0].Failed)
			}
		})
	}
	got, verdict := Advance(spec, st, Observation{Now: now, CanaryAvailable: true, Measured: takenFor(&st, now, failing)})
	if verdict != Failed {
		t.Errorf("the candidate's own failing measurement in its step: verdict %v, %s", verdict, got.Message)
	}
}

func TestASampleOlderThanTheStepIsInconclusive(t *testing.T) {
	spec := canary()
	prev := int64(1)
	st := Begin(spec, 3, "uid-3", &prev, t0)
	st.Step, st.StepStartTime = new(int32(0)), timeRef(t0.Add(2*time.Minute))
	now := st.StepStartTime.Add(spec.Steps[0].Duration.Duration + time.Second) // the step's time is up
	stale := takenFor(&st, st.StepStartTime.Add(-time.Hour), Measurement{Name: "error-rate", Value: 0.001})
	got, verdict := Advance(spec, st, Observation{Now: now, CanaryAvailable: true, Measured: stale})
	if verdict != Undecided || got.Phase != mlv1.RolloutPaused || *got.Step != 0 {
		t.Fatalf("a stale sample ended or passed the step: verdict %v, phase %s, step %d", verdict, got.Phase, *got.Step)
	}
	if got.Metrics[0].Inconclusive != 1 || got.Metrics[0].Passed != 0 ||
		!strings.Contains(got.Metrics[0].Message, "is older than the step") {
		t.Errorf("the stale sample was not inconclusive: %+v", got.Metrics[0])
	}
}
