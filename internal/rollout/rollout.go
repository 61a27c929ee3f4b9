// Package rollout holds the rules of a model's progressive rollout as pure functions: how a
// canary advances through its steps, when its online gates pass, fail or are inconclusive, how
// long a bake lasts, and how many pods each track runs. It reads no cluster and keeps no state:
// the state is the model's status.rollout, and the controller measures, decides with these
// functions, and records the result.
package rollout

import (
	"fmt"
	"math"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// Measurement is one metric's value at one interval, or why there is none.
type Measurement struct {
	Name  string
	Value float64
	// Err makes the measurement inconclusive: no data, a query error, Prometheus unreachable.
	Err error
	// For is the rollout the measurement was taken for (TargetOf its status), and At the time
	// of the sample Prometheus answered with; zero when there is none (Err).
	For Target
	At  time.Time
}

// Target is what a measurement measured: one candidate (or baked version), by UID, in one step
// (or the shadow, or the bake) that began at one time. A measurement counts only for the rollout
// status it was taken for: a cache that lags may show another candidate, or an earlier step, than
// the API server's view that the measurements are recorded on.
type Target struct {
	VersionUID string
	Phase      string // "canary", "shadow" or "bake": a pause keeps the step it paused in
	Step       int32
	StepStart  time.Time
}

// TargetOf is the target of measurements taken for st.
func TargetOf(st *mlv1.RolloutStatus) Target {
	t := Target{VersionUID: st.VersionUID, Phase: "canary", Step: -1}
	switch {
	case st.Phase == mlv1.RolloutBaking:
		t.Phase = "bake"
	case st.Step == nil:
		t.Phase = "shadow"
	default:
		t.Step = *st.Step
	}
	if st.StepStartTime != nil {
		t.StepStart = st.StepStartTime.Time
	}
	return t
}

// counts says whether m measures st: it was taken for st's candidate in st's step.
func (m Measurement) counts(st *mlv1.RolloutStatus) bool {
	t := TargetOf(st)
	return m.For == t && !t.StepStart.IsZero()
}

// fresh is m, made inconclusive when its sample is older than st's step: it says nothing of the
// step, and skipping it would let the step end without that metric measured in it.
func (m Measurement) fresh(st *mlv1.RolloutStatus) Measurement {
	if start := TargetOf(st).StepStart; m.Err == nil && m.At.Before(start) {
		m.Err = fmt.Errorf("the newest sample Prometheus has (%s) is older than the step, which began at %s",
			m.At.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
	}
	return m
}

// Observation is what one reconcile saw of a rollout.
type Observation struct {
	Now time.Time
	// Measured are the measurements taken now, one per metric; nil when none was due.
	Measured []Measurement
	// CanaryAvailable says the canary Deployment runs the candidate on all the pods of the
	// current step; CanaryFailed that it missed its progress deadline.
	CanaryAvailable, CanaryFailed bool
	// Serving is the version every stable prediction pod runs, if any.
	Serving *int64
	// Held says a person holds the canary (the model's ml.podium.dev/pause-rollout annotation):
	// it pauses where it stands, and its step starts again from its beginning once released. The
	// analysis goes on measuring, and a failure still ends the canary. A bake is not held.
	Held bool
}

// Verdict is what a rollout's analysis concluded.
type Verdict int

const (
	// Undecided: the rollout goes on.
	Undecided Verdict = iota
	// Passed: every step (or the bake) ended with every measurement passing.
	Passed
	// Failed: a metric failed more often than its failureLimit, stayed inconclusive past the
	// limit, or the canary pods never became available.
	Failed
)

// inconclusivePause begins the message of a canary paused by an inconclusive analysis.
const inconclusivePause = "Paused: the analysis is inconclusive; it resumes when measurements come back: "

// DefaultInterval and DefaultInconclusiveLimit apply when the API server did not default them
// (an object created before the fields existed, or a test's literal).
const (
	DefaultInterval          = 30 * time.Second
	DefaultInconclusiveLimit = 10
)

// Advance moves an active rollout on by what was observed, and says whether it concluded. It
// never mutates st.
func Advance(spec *mlv1.Rollout, st mlv1.RolloutStatus, obs Observation) (mlv1.RolloutStatus, Verdict) {
	st = *st.DeepCopy()
	if st.Phase == mlv1.RolloutBaking {
		return bake(spec, st, obs)
	}
	if st.Shadowing() && spec.Shadow == nil {
		return firstStep(spec, st), Undecided // the spec lost its shadow phase: there is nothing to copy to
	}
	if obs.CanaryFailed {
		st.Message = fmt.Sprintf("The canary pods of version %d did not become available within the progress deadline", st.Version)
		return st, Failed
	}
	if !obs.CanaryAvailable {
		st.StepStartTime = nil // the step starts when its pods serve
		st.Message = fmt.Sprintf("%s: waiting for the canary pods of version %d", stepName(spec, st), st.Version)
		if obs.Held {
			st.Phase = mlv1.RolloutPaused
			st.Message = held(spec, st, "its canary pods are starting")
		}
		return st, Undecided
	}
	if st.StepStartTime == nil {
		st.StepStartTime = timeRef(obs.Now)
	}
	if verdict := measure(spec, &st, obs); verdict != Undecided {
		return st, verdict
	}
	if obs.Held {
		st.Phase = mlv1.RolloutPaused
		st.Message = held(spec, st, holding(spec, st))
		return st, Undecided
	}
	if st.Phase == mlv1.RolloutPaused {
		if why := inconclusive(spec, st); why != "" {
			st.Message = bounded(inconclusivePause + why) // also after a hold, which said more
			return st, Undecided
		}
		resume(&st, obs.Now)
	}
	if st.Shadowing() {
		if !stepDone(spec, st, spec.Shadow.Duration.Duration, obs.Now) {
			st.Message = fmt.Sprintf("%s: %d%% of the requests are copied to version %d", stepName(spec, st),
				spec.Shadow.Percent, st.Version)
			return st, Undecided
		}
		return firstStep(spec, st), Undecided
	}
	step := stepIndex(st)
	if int(step) >= len(spec.Steps) || !stepDone(spec, st, spec.Steps[step].Duration.Duration, obs.Now) {
		st.Message = fmt.Sprintf("%s: %d%% of the %s version %d", stepName(spec, st), st.Weight, share(spec), st.Version)
		return st, Undecided
	}
	if int(step)+1 < len(spec.Steps) {
		st.Step = new(step + 1)
		st.StepStartTime = nil
		st.Message = fmt.Sprintf("%s: moving %d%% of the %s to version %d", stepName(spec, st), spec.Steps[step+1].Weight,
			shareNoun(spec), st.Version)
		return st, Undecided
	}
	steps := fmt.Sprintf("%d canary steps", len(spec.Steps))
	if len(spec.Steps) == 1 {
		steps = "its canary step"
	}
	st.Message = "Passed " + steps + summary(st)
	return st, Passed
}

// firstStep ends the shadow phase of st: its first step begins once its pods serve.
func firstStep(spec *mlv1.Rollout, st mlv1.RolloutStatus) mlv1.RolloutStatus {
	st.Phase, st.Step, st.StepStartTime = mlv1.RolloutProgressing, new(int32(0)), nil
	st.Message = fmt.Sprintf("%s: moving %d%% of the %s to version %d", stepName(spec, st), StepWeight(spec, &st),
		shareNoun(spec), st.Version)
	return st
}

// bake advances a rollout that watches a new Production version: it starts when the version
// serves on every pod, measures, and passes when the bake's time is up.
func bake(spec *mlv1.Rollout, st mlv1.RolloutStatus, obs Observation) (mlv1.RolloutStatus, Verdict) {
	if obs.Serving == nil || *obs.Serving != st.Version {
		st.StepStartTime = nil
		st.Message = fmt.Sprintf("Baking: waiting for version %d to serve on every pod", st.Version)
		return st, Undecided
	}
	if st.StepStartTime == nil {
		st.StepStartTime = timeRef(obs.Now)
	}
	if verdict := measure(spec, &st, obs); verdict != Undecided {
		return st, verdict
	}
	if st.Phase == mlv1.RolloutPaused {
		// A bake has no traffic to hold back, and ml.podium.dev/pause-rollout does not hold it:
		// it waits for data to pass.
		st.Phase = mlv1.RolloutBaking
		return st, Undecided
	}
	if spec.Bake == nil || stepDone(spec, st, spec.Bake.Duration, obs.Now) {
		st.Message = "Baked" + summary(st)
		return st, Passed
	}
	st.Message = fmt.Sprintf("Baking version %d until %s", st.Version,
		st.StepStartTime.Add(spec.Bake.Duration).UTC().Format(time.RFC3339))
	return st, Undecided
}

// measure records the measurements taken now, if any, and says whether they end the rollout. An
// inconclusive measurement pauses a canary, which resumes (see Advance), from the start of its
// step, with the next conclusive one.
func measure(spec *mlv1.Rollout, st *mlv1.RolloutStatus, obs Observation) Verdict {
	var measured []Measurement
	for _, m := range obs.Measured {
		if m.counts(st) {
			measured = append(measured, m.fresh(st))
		}
	}
	if len(measured) == 0 || spec.Analysis == nil {
		return Undecided
	}
	obs.Measured = measured
	st.LastMeasurementTime = timeRef(obs.Now)
	var failed, inconclusive []string
	for _, m := range spec.Analysis.Metrics {
		ms := metricStatus(st, m)
		got, ok := find(obs.Measured, m.Name)
		switch {
		case !ok:
			continue
		case got.Err != nil:
			ms.Inconclusive++
			ms.Message = "Inconclusive: " + got.Err.Error()
			inconclusive = append(inconclusive, fmt.Sprintf("%s: %s", m.Name, got.Err))
			if ms.Inconclusive >= inconclusiveLimit(spec) {
				failed = append(failed, fmt.Sprintf("%s was inconclusive %d times in a row (the limit is %d): %s",
					m.Name, ms.Inconclusive, inconclusiveLimit(spec), got.Err))
			}
		default:
			value := mlv1.NewNumber(got.Value)
			ms.Value, ms.Inconclusive = &value, 0
			if Within(got.Value, m) {
				ms.Passed++
				ms.Message = fmt.Sprintf("%s %s %s", m.Name, value, ms.Bound)
				continue
			}
			ms.Failed++
			ms.Message = fmt.Sprintf("%s %s is outside %s", m.Name, value, ms.Bound)
			if ms.Failed > m.FailureLimit {
				failed = append(failed, fmt.Sprintf("%s %s is outside %s (failed %s, the limit is %d)",
					m.Name, value, ms.Bound, times(ms.Failed), m.FailureLimit))
			}
		}
	}
	switch {
	case len(failed) > 0:
		st.Message = "Analysis failed: " + strings.Join(failed, "; ")
		return Failed
	case len(inconclusive) > 0:
		st.Phase = mlv1.RolloutPaused
		st.Message = bounded(inconclusivePause + strings.Join(inconclusive, "; "))
	}
	return Undecided
}

// resume ends a pause of st: its step (or shadow) starts again, and is measured again in full.
func resume(st *mlv1.RolloutStatus, now time.Time) {
	st.Phase = mlv1.RolloutProgressing
	if st.Step == nil {
		st.Phase = mlv1.RolloutShadowing
	}
	st.StepStartTime = timeRef(now)
}

// inconclusive lists the metrics of spec whose last measurement in st gave no number, with
// why; empty when every last measurement was conclusive. A paused canary resumes only then.
func inconclusive(spec *mlv1.Rollout, st mlv1.RolloutStatus) string {
	if spec.Analysis == nil {
		return ""
	}
	var parts []string
	for _, m := range spec.Analysis.Metrics {
		for _, ms := range st.Metrics {
			if ms.Name == m.Name && ms.Inconclusive > 0 {
				parts = append(parts, fmt.Sprintf("%s: %s", m.Name, strings.TrimPrefix(ms.Message, "Inconclusive: ")))
			}
		}
	}
	return strings.Join(parts, "; ")
}

// held is the message of a canary a person holds with ml.podium.dev/pause-rollout: where it
// holds, how to resume it, and, when the analysis is inconclusive too, why that is, since it
// will keep the canary paused after the annotation goes.
func held(spec *mlv1.Rollout, st mlv1.RolloutStatus, where string) string {
	msg := fmt.Sprintf("Paused by the annotation %s: %s: %s; remove the annotation (kubectl podium resume) to "+
		"resume, and the step starts again from its beginning", mlv1.AnnotationPauseRollout, stepName(spec, st), where)
	if why := inconclusive(spec, st); why != "" {
		msg += "; the analysis is inconclusive too: " + why
	}
	return bounded(msg)
}

// maxMessage is the longest status.rollout.message, and the longest message of one of its
// metrics, that the API server accepts, in characters.
const maxMessage = 1024

// bounded cuts a message that lists every metric's error to what the status accepts.
func bounded(msg string) string {
	if runes := []rune(msg); len(runes) > maxMessage {
		return string(runes[:maxMessage-3]) + "..."
	}
	return msg
}

// BoundMessages cuts every message of st to what the API server accepts. The controller passes
// each rollout status it writes through it, so that no message built from Prometheus' errors, a
// query or many metrics makes the API server refuse the write: a status refused for its size
// would hold the canary where it is, abort included.
func BoundMessages(st *mlv1.RolloutStatus) {
	if st == nil {
		return
	}
	st.Message = bounded(st.Message)
	for i := range st.Metrics {
		st.Metrics[i].Message = bounded(st.Metrics[i].Message)
	}
}

// holding says where a held canary stands, as in "10% of the pods run version 2".
func holding(spec *mlv1.Rollout, st mlv1.RolloutStatus) string {
	if st.Shadowing() {
		return fmt.Sprintf("%d%% of the requests are copied to version %d", MirrorPercent(spec, &st), st.Version)
	}
	return fmt.Sprintf("%d%% of the %s version %d", StepWeight(spec, &st), share(spec), st.Version)
}

// Due says whether the analysis should measure now: a rollout with online gates whose step (or
// bake) has begun, and whose last measurement is an interval old.
func Due(spec *mlv1.Rollout, st *mlv1.RolloutStatus, now time.Time) bool {
	if spec == nil || spec.Analysis == nil || !st.Active() || st.StepStartTime == nil {
		return false
	}
	return st.LastMeasurementTime == nil || !now.Before(st.LastMeasurementTime.Add(interval(spec)))
}

// Wake is how long until the rollout may next change without an event: the next measurement, or
// the end of the step or the bake. Zero when nothing is timed.
func Wake(spec *mlv1.Rollout, st *mlv1.RolloutStatus, now time.Time) time.Duration {
	if spec == nil || !st.Active() || st.StepStartTime == nil {
		return 0
	}
	var at []time.Time
	if spec.Analysis != nil {
		last := st.StepStartTime.Time
		if st.LastMeasurementTime != nil {
			last = st.LastMeasurementTime.Time
		}
		at = append(at, last.Add(interval(spec)))
	}
	switch step := stepIndex(*st); {
	case st.Phase == mlv1.RolloutBaking && spec.Bake != nil:
		at = append(at, st.StepStartTime.Add(spec.Bake.Duration))
	case st.Phase == mlv1.RolloutShadowing && spec.Shadow != nil:
		at = append(at, st.StepStartTime.Add(spec.Shadow.Duration.Duration))
	case st.Phase == mlv1.RolloutProgressing && int(step) < len(spec.Steps):
		at = append(at, st.StepStartTime.Add(spec.Steps[step].Duration.Duration))
	}
	var wake time.Duration
	for _, t := range at {
		if d := max(t.Sub(now), time.Second); wake == 0 || d < wake {
			wake = d
		}
	}
	return wake
}

// Begin is the status of a new canary for candidate, which the promotion rules made the
// candidate while previous is Production: in its shadow phase when the spec has one, otherwise
// at its first step.
func Begin(spec *mlv1.Rollout, version int64, uid string, previous *int64, now time.Time) mlv1.RolloutStatus {
	st := mlv1.RolloutStatus{Version: version, VersionUID: uid, Phase: mlv1.RolloutProgressing, Step: new(int32(0)),
		StartTime: timeRef(now), PreviousVersion: previous, Metrics: metricStatuses(spec)}
	if spec.Shadow != nil {
		st.Phase, st.Step = mlv1.RolloutShadowing, nil
	}
	st.Message = fmt.Sprintf("%s: starting the canary pods of version %d", stepName(spec, st), version)
	return st
}

// BeginBake is the status of a bake of version, which has just become Production in place of previous.
func BeginBake(spec *mlv1.Rollout, version int64, uid string, previous *int64, now time.Time) mlv1.RolloutStatus {
	return mlv1.RolloutStatus{Version: version, VersionUID: uid, Phase: mlv1.RolloutBaking, StartTime: timeRef(now),
		PreviousVersion: previous, Metrics: metricStatuses(spec),
		Message: fmt.Sprintf("Baking: waiting for version %d to serve on every pod", version)}
}

// CanaryReplicas is how many of replicas pods run the candidate at weight percent: rounded up,
// at least one, at most all.
func CanaryReplicas(replicas, weight int32) int32 {
	n := int32(math.Ceil(float64(replicas) * float64(weight) / 100))
	return min(max(n, 1), max(replicas, 1))
}

// Weight is the share of the pods, in percent, that canary of replicas pods give the candidate.
func Weight(replicas, canary int32) int32 {
	if replicas <= 0 {
		return 100
	}
	return int32(math.Round(float64(canary) * 100 / float64(replicas)))
}

// StepWeight is the share of the requests, in percent, that the current step of st sends to the
// candidate: none during the shadow phase, which only copies them.
func StepWeight(spec *mlv1.Rollout, st *mlv1.RolloutStatus) int32 {
	if st.Shadowing() {
		return 0
	}
	if step := stepIndex(*st); int(step) < len(spec.Steps) {
		return spec.Steps[step].Weight
	}
	return 100
}

// MirrorPercent is the share of the requests, in percent, copied to the candidate: the shadow's
// percent during the shadow phase, otherwise none.
func MirrorPercent(spec *mlv1.Rollout, st *mlv1.RolloutStatus) int32 {
	if !st.Shadowing() || spec.Shadow == nil {
		return 0
	}
	return spec.Shadow.Percent
}

// Pods is how many of replicas prediction pods run the candidate during st's current phase:
// enough for the step's weight, or, in the shadow phase, for the copied share of the requests.
func Pods(spec *mlv1.Rollout, replicas int32, st *mlv1.RolloutStatus) int32 {
	if mirror := MirrorPercent(spec, st); mirror > 0 {
		return CanaryReplicas(replicas, mirror)
	}
	return CanaryReplicas(replicas, StepWeight(spec, st))
}

// StablePods is how many pods the stable track runs while st's canary runs on Pods of them,
// when canaryAvailable of the canary's pods already serve the candidate. With the Gateway API,
// the route gives each track its exact weight, so the stable track keeps every pod, enough to
// take all the traffic back at once on an abort. Otherwise the replica counts are the weights
// and the two tracks share the pods, surge before shrink: the stable track gives up a pod only
// once a canary pod serves in its place, so that the available pods never drop below replicas
// while a step moves.
func StablePods(spec *mlv1.Rollout, replicas int32, st *mlv1.RolloutStatus, canaryAvailable int32) int32 {
	if spec.GatewayAPI() != nil {
		return replicas
	}
	return replicas - min(Pods(spec, replicas, st), max(canaryAvailable, 0))
}

// Bound renders a metric's bound for messages, such as "<= 0.01" or "in [0.8, 1]".
func Bound(m mlv1.AnalysisMetric) string {
	switch {
	case m.Min != nil && m.Max != nil:
		return fmt.Sprintf("in [%s, %s]", *m.Min, *m.Max)
	case m.Min != nil:
		return ">= " + m.Min.String()
	case m.Max != nil:
		return "<= " + m.Max.String()
	}
	return ""
}

// Within says whether a value passes a metric's bounds, inclusive.
func Within(v float64, m mlv1.AnalysisMetric) bool {
	return (m.Min == nil || v >= m.Min.Float64()) && (m.Max == nil || v <= m.Max.Float64())
}

func metricStatuses(spec *mlv1.Rollout) []mlv1.MetricStatus {
	if spec == nil || spec.Analysis == nil {
		return nil
	}
	out := make([]mlv1.MetricStatus, 0, len(spec.Analysis.Metrics))
	for _, m := range spec.Analysis.Metrics {
		out = append(out, mlv1.MetricStatus{Name: m.Name, Bound: Bound(m)})
	}
	return out
}

// metricStatus returns st's entry for m, added when the spec gained the metric mid-rollout.
func metricStatus(st *mlv1.RolloutStatus, m mlv1.AnalysisMetric) *mlv1.MetricStatus {
	for i := range st.Metrics {
		if st.Metrics[i].Name == m.Name {
			st.Metrics[i].Bound = Bound(m)
			return &st.Metrics[i]
		}
	}
	st.Metrics = append(st.Metrics, mlv1.MetricStatus{Name: m.Name, Bound: Bound(m)})
	return &st.Metrics[len(st.Metrics)-1]
}

func find(ms []Measurement, name string) (Measurement, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Measurement{}, false
}

// stepDone says whether a step (or bake) of the given length is over: its time is up and, with
// online gates, the analysis measured since it began.
func stepDone(spec *mlv1.Rollout, st mlv1.RolloutStatus, length time.Duration, now time.Time) bool {
	if now.Before(st.StepStartTime.Add(length)) {
		return false
	}
	return spec.Analysis == nil || (st.LastMeasurementTime != nil && !st.LastMeasurementTime.Before(st.StepStartTime))
}

func summary(st mlv1.RolloutStatus) string {
	parts := make([]string, 0, len(st.Metrics))
	for _, m := range st.Metrics {
		if m.Value != nil {
			parts = append(parts, fmt.Sprintf("%s %s %s", m.Name, *m.Value, m.Bound))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// shareNoun is what a step's weight is a share of: the requests, with the Gateway API's exact
// weights, or the prediction pods.
func shareNoun(spec *mlv1.Rollout) string {
	if spec.GatewayAPI() != nil {
		return "requests"
	}
	return "pods"
}

// share says what a step's weight shares out, as in "25% of the pods run version 2".
func share(spec *mlv1.Rollout) string {
	if spec.GatewayAPI() != nil {
		return "requests go to"
	}
	return "pods run"
}

func stepName(spec *mlv1.Rollout, st mlv1.RolloutStatus) string {
	if st.Shadowing() {
		return "Shadow"
	}
	return fmt.Sprintf("Step %d of %d", stepIndex(st)+1, len(spec.Steps))
}

func stepIndex(st mlv1.RolloutStatus) int32 {
	if st.Step == nil {
		return 0
	}
	return *st.Step
}

func interval(spec *mlv1.Rollout) time.Duration {
	if spec.Analysis.Interval.Duration > 0 {
		return spec.Analysis.Interval.Duration
	}
	return DefaultInterval
}

func inconclusiveLimit(spec *mlv1.Rollout) int32 {
	if spec.Analysis.InconclusiveLimit > 0 {
		return spec.Analysis.InconclusiveLimit
	}
	return DefaultInconclusiveLimit
}

func timeRef(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

// times renders a count of failures: "once", "3 times".
func times(n int32) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}
