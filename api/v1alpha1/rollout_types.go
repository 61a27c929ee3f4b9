package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutStrategy says how a new Production version reaches the prediction pods.
// +kubebuilder:validation:Enum=Replace;Canary
type RolloutStrategy string

const (
	// RolloutReplace makes the version Production at once and rolls the prediction Deployment
	// over to it.
	RolloutReplace RolloutStrategy = "Replace"
	// RolloutCanary first runs the version as a candidate on a share of the prediction pods, step
	// by step, checked by the online analysis, and makes it Production only when every step passes.
	RolloutCanary RolloutStrategy = "Canary"
)

// AnnotationSkipRollout on a ModelVersion, set to "true", makes a spec.stage: Production request
// on it take effect at once, without a canary rollout: the emergency path. It does nothing for
// automatic promotions.
const AnnotationSkipRollout = "ml.podium.dev/skip-rollout"

// AnnotationPauseRollout on a RegisteredModel, set to "true" by a person, holds the model's
// running canary where it stands: its phase becomes Paused, its step does not advance and its
// candidate is not promoted, while its pods and weights stay and its analysis keeps measuring (a
// failure past a failureLimit still aborts it). Removing the annotation resumes the canary, and
// its current step starts again from its beginning. A bake is not held: its version is already
// Production, and there is no traffic to hold back.
const AnnotationPauseRollout = "ml.podium.dev/pause-rollout"

// RolloutStep is one step of a canary rollout.
type RolloutStep struct {
	// weight is the candidate's share during the step, in percent. With traffic.gatewayAPI it is
	// the exact share of the requests, on the route; otherwise the share of the prediction pods
	// (and so, roughly, of the requests) that run the candidate. Either way the candidate runs on
	// spec.serving.replicas times weight / 100 pods, rounded up, at least one.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`

	// duration is how long the step lasts, with every measurement passing, before the next
	// step begins, such as 2m.
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="a step's duration must be more than 0, such as 2m"
	Duration metav1.Duration `json:"duration"`
}

// Prometheus is where the online analysis reads its metrics.
type Prometheus struct {
	// address is the base URL of the Prometheus HTTP API, such as
	// http://prometheus.monitoring:9090. The operator queries it from its own pod.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="the Prometheus address must be an http:// or https:// URL with a host, such as http://prometheus.monitoring:9090"
	Address string `json:"address"`
}

// AnalysisMetric is one online gate: a PromQL query whose value must stay within bounds.
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="an analysis metric needs min, max or both, for example {name: error-rate, query: ..., max: 0.01}"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",message="an analysis metric's min must not be greater than its max"
type AnalysisMetric struct {
	// name names the metric in the status, the history and Events.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`
	Name string `json:"name"`

	// query is a PromQL instant query that returns one number. It may name {{.Namespace}},
	// {{.Model}}, {{.Version}} (the version under analysis) and {{.Track}} (canary, or stable
	// while baking), which are filled in before each measurement.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`

	// min is the smallest value that passes (inclusive).
	// +optional
	Min *Number `json:"min,omitempty"`

	// max is the largest value that passes (inclusive).
	// +optional
	Max *Number `json:"max,omitempty"`

	// failureLimit is how many failed measurements of this metric the rollout tolerates; one more
	// aborts it.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	FailureLimit int32 `json:"failureLimit,omitempty"`
}

// Analysis is the online gates: measurements from Prometheus taken while a version takes traffic.
type Analysis struct {
	// prometheus is where the metrics are read.
	// +required
	Prometheus Prometheus `json:"prometheus"`

	// interval is how often every metric is measured.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="the analysis interval must be at least 1s, such as 30s"
	Interval metav1.Duration `json:"interval,omitzero"`

	// inconclusiveLimit is how many measurements in a row may be inconclusive (no data, a query
	// error, Prometheus unreachable) before the rollout is aborted. Until then it pauses, and
	// resumes by itself when measurements come back.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty"`

	// metrics are the online gates. Every one must pass at every interval.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Metrics []AnalysisMetric `json:"metrics"`
}

// ParentReference names a Gateway (or another parent the Gateway API allows) that the model's
// HTTPRoute attaches to, as a Gateway API ParentReference does.
type ParentReference struct {
	// name is the parent's name, such as public-gw.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace is the parent's namespace; the model's namespace when absent. A Gateway in
	// another namespace must allow routes from the model's namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// sectionName is the name of a section of the parent, such as a Gateway's listener.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SectionName string `json:"sectionName,omitempty"`

	// port is the port of the parent the route attaches to, such as a Gateway listener's port.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
}

// GatewayAPITraffic has Podium own an HTTPRoute, named after the prediction Service, that
// splits a canary's traffic by exact weights and mirrors requests during a shadow phase.
type GatewayAPITraffic struct {
	// parentRefs are the Gateways the route attaches to.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	ParentRefs []ParentReference `json:"parentRefs"`

	// hostnames are the host names the route answers, such as battle.example.com; a leading
	// wildcard label (*.example.com) is allowed. All of the parents' host names when absent.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Hostnames []string `json:"hostnames,omitempty"`
}

// Traffic says how a canary's weights reach the requests.
type Traffic struct {
	// gatewayAPI splits traffic with exact weights, and mirrors it during a shadow phase, on an
	// HTTPRoute Podium owns. The cluster needs the Gateway API CRDs and an implementation.
	// Without it, weights are approximated by the replica counts behind the model's Service.
	// +optional
	GatewayAPI *GatewayAPITraffic `json:"gatewayAPI,omitempty"`
}

// Shadow is a canary's first phase: the candidate receives a copy of the live requests, and its
// answers are dropped.
type Shadow struct {
	// percent is the share of requests copied to the candidate, 1 to 100.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`

	// duration is how long the shadow phase lasts, with every measurement passing, before the
	// first step begins, such as 5m.
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="the shadow's duration must be more than 0, such as 5m"
	Duration metav1.Duration `json:"duration"`
}

// Rollout says how a new version reaches the prediction pods and which online gates it must pass.
// +kubebuilder:validation:XValidation:rule="!has(self.strategy) || self.strategy != 'Canary' || (has(self.steps) && size(self.steps) > 0)",message="a Canary rollout needs steps, for example [{weight: 10, duration: 2m}, {weight: 50, duration: 5m}]"
// +kubebuilder:validation:XValidation:rule="!has(self.bake) || has(self.analysis)",message="bake keeps the analysis running after the promotion: it needs spec.serving.rollout.analysis"
// +kubebuilder:validation:XValidation:rule="!has(self.shadow) || (has(self.traffic) && has(self.traffic.gatewayAPI))",message="shadow mirrors requests to the candidate, which needs a data plane that copies requests: set spec.serving.rollout.traffic.gatewayAPI"
// +kubebuilder:validation:XValidation:rule="!has(self.shadow) || (has(self.strategy) && self.strategy == 'Canary')",message="shadow is the first phase of a canary: it needs strategy: Canary"
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || (self.steps.map(s, s.weight).isSorted() && self.steps.all(a, self.steps.exists_one(b, b.weight == a.weight)))",message="the steps' weights must increase from one step to the next, such as 10, 50, 100"
type Rollout struct {
	// strategy is Replace (the new version becomes Production at once; the default) or Canary.
	// +optional
	// +kubebuilder:default=Replace
	Strategy RolloutStrategy `json:"strategy,omitempty"`

	// steps are the canary's steps, in order; after the last one the candidate becomes Production.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Steps []RolloutStep `json:"steps,omitempty"`

	// analysis is the online gates, checked at every interval of every step, and while baking.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// bake keeps the analysis running for this long after the version becomes Production and
	// serves on every pod; a failure then restores the previous Production version.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="bake must be more than 0, such as 10m"
	Bake *metav1.Duration `json:"bake,omitempty"`

	// shadow, with strategy Canary, makes the canary begin with a shadow phase: the candidate's
	// pods receive a copy of the requests, their answers are dropped, and the analysis measures
	// them, before the first step sends them any traffic. It needs traffic.gatewayAPI.
	// +optional
	Shadow *Shadow `json:"shadow,omitempty"`

	// traffic says how a canary's weights reach the requests: by the replica counts behind the
	// model's Service (the default, on any cluster), or exactly, on an HTTPRoute (gatewayAPI).
	// +optional
	Traffic *Traffic `json:"traffic,omitempty"`
}

// GatewayAPI is the rollout's traffic.gatewayAPI, nil when it has none.
func (r *Rollout) GatewayAPI() *GatewayAPITraffic {
	if r == nil || r.Traffic == nil {
		return nil
	}
	return r.Traffic.GatewayAPI
}

// RolloutPhase is where a rollout stands.
// +kubebuilder:validation:Enum=Shadowing;Progressing;Paused;Baking;Succeeded;Aborted
type RolloutPhase string

const (
	// RolloutShadowing: the candidate's canary pods receive a copy of the requests, whose answers
	// are dropped, and the analysis measures them; no request depends on them yet.
	RolloutShadowing RolloutPhase = "Shadowing"
	// RolloutProgressing: the candidate runs on the canary pods and the steps advance.
	RolloutProgressing RolloutPhase = "Progressing"
	// RolloutPaused: the canary holds where it stands: the last measurements were inconclusive
	// and it waits for data, or a person set the annotation ml.podium.dev/pause-rollout on the
	// model. Either way it resumes from the start of its step.
	RolloutPaused RolloutPhase = "Paused"
	// RolloutBaking: the version is Production and the analysis keeps watching it.
	RolloutBaking RolloutPhase = "Baking"
	// RolloutSucceeded: the version passed every step and the bake.
	RolloutSucceeded RolloutPhase = "Succeeded"
	// RolloutAborted: the rollout ended without the version staying Production.
	RolloutAborted RolloutPhase = "Aborted"
)

// MetricStatus is the last measurement of one analysis metric, and its counts in this rollout.
type MetricStatus struct {
	// name is the metric's name in spec.serving.rollout.analysis.metrics.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// value is the last conclusive measurement; absent before there is one.
	// +optional
	Value *Number `json:"value,omitempty"`

	// bound is the metric's bound as written, such as "<= 0.01".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Bound string `json:"bound,omitempty"`

	// passed counts measurements within the bound.
	// +optional
	Passed int32 `json:"passed,omitempty"`

	// failed counts measurements outside the bound.
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// inconclusive counts measurements in a row that gave no number; reset by a conclusive one.
	// +optional
	Inconclusive int32 `json:"inconclusive,omitempty"`

	// message says what the last measurement found, or why it was inconclusive.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// RolloutStatus is the state of a model's current or last rollout.
type RolloutStatus struct {
	// version is the version being rolled out (the candidate), or baked.
	// +required
	Version int64 `json:"version"`

	// versionUID is the UID of that ModelVersion.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	VersionUID string `json:"versionUID,omitempty"`

	// phase is Shadowing, Progressing, Paused, Baking, Succeeded or Aborted.
	// +required
	Phase RolloutPhase `json:"phase"`

	// step is the index in spec.serving.rollout.steps of the current step; absent during the
	// shadow phase and while baking.
	// +optional
	Step *int32 `json:"step,omitempty"`

	// weight is the candidate's share of the requests now, in percent: with
	// spec.serving.rollout.traffic.gatewayAPI the exact weight of its backend on the HTTPRoute (0
	// while it only receives copies), otherwise the share of the prediction pods that run it, as
	// the replica counts give it.
	// +optional
	Weight int32 `json:"weight,omitempty"`

	// startTime is when the rollout began.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// stepStartTime is when the current step (or the bake) began; a pause starts it again.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`

	// lastMeasurementTime is when the analysis last measured.
	// +optional
	LastMeasurementTime *metav1.Time `json:"lastMeasurementTime,omitempty"`

	// metrics are the analysis metrics' last values and counts.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Metrics []MetricStatus `json:"metrics,omitempty"`

	// message says where the rollout stands, and why it paused or ended.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// reason is what made the version the candidate, and the history reason of its promotion
	// when the canary passes: GatesPassed or ManualRequest.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason HistoryReason `json:"reason,omitempty"`

	// requestedBy is who asked for the promotion, for a ManualRequest.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	RequestedBy string `json:"requestedBy,omitempty"`

	// floor is the model's status.automaticPromotionFloor once the candidate is promoted: the
	// candidate's number for an automatic promotion, the newest version when a request was made.
	// +optional
	Floor int64 `json:"floor,omitempty"`

	// previousVersion is the version that was Production when the rollout began: the one a
	// failed bake restores.
	// +optional
	PreviousVersion *int64 `json:"previousVersion,omitempty"`
}

// Active says whether the rollout still decides something: a candidate in its shadow phase or
// its steps, or a version baking.
func (s *RolloutStatus) Active() bool {
	return s.Canary() || (s != nil && s.Phase == RolloutBaking)
}

// Canary says whether the rollout runs a candidate on canary pods.
func (s *RolloutStatus) Canary() bool {
	return s != nil && (s.Phase == RolloutShadowing || s.Phase == RolloutProgressing || s.Phase == RolloutPaused)
}

// Shadowing says whether the rollout is in its shadow phase, running or paused: a canary that
// has not reached its first step.
func (s *RolloutStatus) Shadowing() bool {
	return s.Canary() && s.Step == nil
}
