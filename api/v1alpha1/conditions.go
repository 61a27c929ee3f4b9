package v1alpha1

// Condition types. They follow kstatus: Ready is True when the object is fully reconciled,
// Reconciling is True while the operator works towards it, Stalled is True when it cannot
// progress without a change from a person.
const (
	// ConditionReady says the object is reconciled.
	ConditionReady = "Ready"
	// ConditionReconciling says the operator is working on the object.
	ConditionReconciling = "Reconciling"
	// ConditionStalled says the object cannot progress until a person changes something.
	ConditionStalled = "Stalled"
	// ConditionGatesPassed, on a ModelVersion, says whether its metrics pass every gate.
	ConditionGatesPassed = "GatesPassed"
	// ConditionServing, on a ModelVersion of a model with spec.serving, says whether the
	// prediction Deployment has rolled out its bundle: all replicas updated and available.
	ConditionServing = "Serving"
)

// Condition reasons. Each is documented in docs/troubleshooting.md with what to do.
const (
	// ReasonReconciled: the decision is made and recorded.
	ReasonReconciled = "Reconciled"
	// ReasonModelNotFound: the version's RegisteredModel does not exist (yet); the version waits.
	ReasonModelNotFound = "ModelNotFound"
	// ReasonDuplicateVersion: another ModelVersion of the model claims the same version number.
	ReasonDuplicateVersion = "DuplicateVersion"
	// ReasonAllGatesPassed: every gate holds.
	ReasonAllGatesPassed = "AllGatesPassed"
	// ReasonNoGates: the model has no gates, so every version passes.
	ReasonNoGates = "NoGates"
	// ReasonGateFailed: a metric is outside its gate's bound.
	ReasonGateFailed = "GateFailed"
	// ReasonMetricMissing: the version does not report a metric that a gate needs.
	ReasonMetricMissing = "MetricMissing"
	// ReasonRollingOut: the prediction Deployment is rolling out the Production version.
	ReasonRollingOut = "RollingOut"
	// ReasonRolledOut: every prediction pod runs the version's bundle and is available.
	ReasonRolledOut = "RolledOut"
	// ReasonNotServing: the version is not the one the prediction Deployment runs.
	ReasonNotServing = "NotServing"
	// ReasonNoProduction: the model has no Production version to serve.
	ReasonNoProduction = "NoProduction"
	// ReasonInvalidServing: spec.serving cannot be rendered, such as a template without containers.
	ReasonInvalidServing = "InvalidServing"
	// ReasonClaimNotFound: the Production version's pvc:// URI names a claim that does not exist.
	ReasonClaimNotFound = "ClaimNotFound"
	// ReasonServingRejected: the API server refuses the rendered Deployment or Service (a dry run
	// of the apply failed); the message is the API server's.
	ReasonServingRejected = "ServingRejected"
	// ReasonServingNameTaken: an object Podium did not create already has the name of the
	// prediction Deployment or Service; Podium never takes it over.
	ReasonServingNameTaken = "ServingNameTaken"
	// ReasonCanaryProgressing: a candidate runs on the canary pods and its steps advance.
	ReasonCanaryProgressing = "CanaryProgressing"
	// ReasonAnalysisInconclusive: the canary's online gates give no number (no data, a query
	// error, Prometheus unreachable); the rollout waits, and resumes when measurements come back.
	ReasonAnalysisInconclusive = "AnalysisInconclusive"
	// ReasonPausedByAnnotation: a person paused the canary with the annotation
	// ml.podium.dev/pause-rollout on the model; it holds until the annotation is removed. It
	// shows, rather than AnalysisInconclusive, when the analysis is inconclusive too.
	ReasonPausedByAnnotation = "PausedByAnnotation"
	// ReasonBaking: the new Production version serves and the online gates keep watching it.
	ReasonBaking = "Baking"
	// ReasonGatewayAPIMissing: spec.serving.rollout.traffic.gatewayAPI is set, and the cluster
	// does not serve the Gateway API's HTTPRoute kind; no canary starts.
	ReasonGatewayAPIMissing = "GatewayAPIMissing"
)
