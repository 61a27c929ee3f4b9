package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// PromotionMode says who promotes a version that passes the gates.
// +kubebuilder:validation:Enum=Automatic;Manual
type PromotionMode string

const (
	// PromotionAutomatic promotes the newest version that passes every gate.
	PromotionAutomatic PromotionMode = "Automatic"
	// PromotionManual keeps versions that pass every gate in Staging until a person asks for
	// Production with spec.stage on the version.
	PromotionManual PromotionMode = "Manual"
)

// Direction says which way a metric improves.
// +kubebuilder:validation:Enum=HigherIsBetter;LowerIsBetter
type Direction string

const (
	// HigherIsBetter is for metrics such as accuracy.
	HigherIsBetter Direction = "HigherIsBetter"
	// LowerIsBetter is for metrics such as loss or overfitting.
	LowerIsBetter Direction = "LowerIsBetter"
)

// Gate is one quality threshold that a version must meet to leave the None stage.
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="a gate needs min, max or both, for example {metric: test_accuracy, min: 0.85}"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",message="a gate's min must not be greater than its max"
type Gate struct {
	// metric is the name of the metric the gate reads from each version's spec.metrics.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.\-/]*$`
	Metric string `json:"metric"`

	// min is the smallest value that passes (inclusive).
	// +optional
	Min *Number `json:"min,omitempty"`

	// max is the largest value that passes (inclusive).
	// +optional
	Max *Number `json:"max,omitempty"`
}

// Improvement is the champion/challenger rule: a version is promoted automatically only when it
// beats the current Production version on one metric by at least minDelta.
type Improvement struct {
	// metric is the metric compared between the candidate and the Production version.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.\-/]*$`
	Metric string `json:"metric"`

	// minDelta is how much better the candidate must be; 0 lets a tie through.
	// +optional
	// +kubebuilder:default=0
	MinDelta *Number `json:"minDelta,omitempty"`

	// direction says which way the metric improves; HigherIsBetter by default.
	// +optional
	// +kubebuilder:default=HigherIsBetter
	Direction Direction `json:"direction,omitempty"`
}

// Promotion is the policy that decides which version serves as Production.
type Promotion struct {
	// mode is Automatic (the newest version that passes the gates becomes Production) or Manual
	// (versions that pass wait in Staging for a spec.stage request).
	// +optional
	// +kubebuilder:default=Automatic
	Mode PromotionMode `json:"mode,omitempty"`

	// gates must all hold for a version to be promoted. The first gate's metric is the model's
	// primary metric, shown by `kubectl get modelversions`.
	// +optional
	// +listType=map
	// +listMapKey=metric
	// +kubebuilder:validation:MaxItems=16
	Gates []Gate `json:"gates,omitempty"`

	// requireImprovement, when set, also requires a candidate to beat the current Production version.
	// +optional
	RequireImprovement *Improvement `json:"requireImprovement,omitempty"`
}

// RegisteredModelSpec defines a model and the rules for promoting its versions.
type RegisteredModelSpec struct {
	// description says what the model does.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// promotion is the policy that decides which version is Production.
	// +optional
	// +kubebuilder:default={mode: Automatic}
	Promotion Promotion `json:"promotion,omitempty"`

	// serving, when set, runs the prediction service: a Deployment that serves the Production
	// version's bundle and a Service in front of it. Without it, Podium only manages stages.
	// +optional
	Serving *Serving `json:"serving,omitempty"`

	// historyLimit is how many stage transitions status.history keeps; the oldest are dropped
	// first. It is at most 500 so that a full history, even of entries with 1024-character
	// messages, stays well under etcd's 1.5 MB limit on an object. Lowering it trims the history
	// when the operator next writes the model's status, which the change itself causes; what was
	// dropped is gone, and raising the limit again does not bring it back.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=500
	HistoryLimit *int32 `json:"historyLimit,omitempty"`
}

// BundleMount says how the bundle reaches the prediction pods.
// +kubebuilder:validation:Enum=InitContainer;ImageVolume
type BundleMount string

const (
	// BundleMountInitContainer fetches the bundle in an init container into a volume, verifying
	// it on the way (and mounts a pvc:// claim).
	BundleMountInitContainer BundleMount = "InitContainer"
	// BundleMountImageVolume mounts an oci:// bundle read-only as a Kubernetes image volume: the
	// node's container runtime pulls it by its digest, and no init container runs.
	BundleMountImageVolume BundleMount = "ImageVolume"
)

// Serving describes the prediction Deployment that serves the Production version. What the API
// server would refuse in the rendered Deployment and Service is refused here already, where it can
// be said in one rule.
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec) || self.template.spec.containers.all(c, has(c.image) && size(c.image) > 0)",message="every container of spec.serving.template needs an image"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec) || size(self.template.spec.containers) == 0 || (has(self.template.spec.containers[0].ports) && size(self.template.spec.containers[0].ports) > 0)",message="the first container of spec.serving.template needs a port: the model's Service sends traffic to the ports of the first container"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec) || !has(self.template.spec.restartPolicy) || self.template.spec.restartPolicy == 'Always'",message="spec.serving.template.spec.restartPolicy must be Always (or left out): a Deployment's pods always restart"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec) || !has(self.template.spec.volumes) || self.template.spec.volumes.all(v, v.name != 'podium-model')",message="spec.serving.template has a volume named podium-model, the name of the volume Podium adds for the bundle; rename it"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec) || ((!has(self.template.spec.initContainers) || self.template.spec.initContainers.all(c, c.name != 'podium-fetch')) && self.template.spec.containers.all(c, c.name != 'podium-fetch'))",message="spec.serving.template has a container named podium-fetch, the name of the init container Podium adds to fetch the bundle; rename it"
// +kubebuilder:validation:XValidation:rule="!has(self.rollout) || !has(self.rollout.strategy) || self.rollout.strategy != 'Canary' || has(self.replicas)",message="a Canary rollout shares the pods between the versions by replica counts: set spec.serving.replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.bundleMount) || self.bundleMount != 'ImageVolume' || !has(self.fetch) || self.fetch",message="spec.serving.bundleMount ImageVolume mounts the bundle, so spec.serving.fetch cannot be false (which leaves the bundle to the predictor); remove fetch, or use bundleMount InitContainer"
type Serving struct {
	// replicas is the number of prediction pods. Leave it out to let a HorizontalPodAutoscaler
	// (or kubectl scale) own the number: Podium then never sets it, and a new Deployment starts
	// with one pod.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// template is the pod template of the prediction server. Podium adds MODEL_NAME,
	// MODEL_VERSION, MODEL_STAGE, MODEL_URI and, with fetch, MODEL_PATH to every container, and
	// the init container that fetches the bundle; it overwrites nothing else.
	// +required
	Template corev1.PodTemplateSpec `json:"template"`

	// fetch downloads and verifies the bundle before the predictor starts, into a volume mounted
	// at MODEL_PATH. Off, the predictor gets MODEL_URI and loads the bundle itself.
	// +optional
	// +kubebuilder:default=true
	Fetch *bool `json:"fetch,omitempty"`

	// bundleMount says how the bundle reaches the pods. InitContainer (the default) runs the
	// fetcher, which downloads and verifies the bundle into a volume (or verifies a pvc:// claim).
	// ImageVolume mounts an oci:// bundle read-only at MODEL_PATH as a Kubernetes image volume,
	// pinned by the URI's digest, with no init container: the node's container runtime pulls it
	// with the template's imagePullSecrets, and needs the ImageVolume feature. A Production version
	// whose bundle is not oci:// cannot be served this way: the model reports InvalidServing.
	// +optional
	// +kubebuilder:default=InitContainer
	BundleMount BundleMount `json:"bundleMount,omitempty"`

	// storageSecretName names a Secret in the model's namespace whose keys become environment
	// variables of the fetcher, such as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
	// AWS_ENDPOINT_URL for an S3-compatible store. Podium never reads it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageSecretName string `json:"storageSecretName,omitempty"`

	// staging runs a second Deployment and Service, <model>-predictor-staging, with one replica,
	// for the newest Staging version, so that people can try a candidate before they promote it.
	// +optional
	Staging bool `json:"staging,omitempty"`

	// progressDeadlineSeconds is how long a rollout may take before it counts as failed and the
	// previous Production version is restored.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// rollout says how a new version reaches the prediction pods: at once (Replace, the default)
	// or as a canary, step by step, and which online gates (Prometheus queries) it must pass
	// before it becomes Production and, with bake, after.
	// +optional
	Rollout *Rollout `json:"rollout,omitempty"`
}

// HistoryReason says why a version changed stage.
type HistoryReason string

const (
	// ReasonGatesPassed: the version passed every gate and was promoted automatically.
	ReasonGatesPassed HistoryReason = "GatesPassed"
	// ReasonManualRequest: a person asked for the stage with spec.stage.
	ReasonManualRequest HistoryReason = "ManualRequest"
	// ReasonRollback: a person asked for an older version as Production.
	ReasonRollback HistoryReason = "Rollback"
	// ReasonSuperseded: another version took its place as Production.
	ReasonSuperseded HistoryReason = "Superseded"
	// ReasonRolledBack: the version was Production and a person rolled back from it.
	ReasonRolledBack HistoryReason = "RolledBack"
	// ReasonArchiveRequest: a person retired the version with spec.stage: Archived.
	ReasonArchiveRequest HistoryReason = "ArchiveRequest"
	// ReasonRestored: the Production version was archived on request and this one, the
	// previous Production version, was restored.
	ReasonRestored HistoryReason = "Restored"
	// ReasonGatesFailed: the version no longer passes every gate.
	ReasonGatesFailed HistoryReason = "GatesFailed"
	// ReasonRolloutFailed: the version's rollout missed its progress deadline; the previous
	// Production version was restored and this one is never promoted automatically again.
	ReasonRolloutFailed HistoryReason = "RolloutFailed"
	// ReasonUnarchived: a person returned an Archived version to the candidates with spec.stage: Staging.
	ReasonUnarchived HistoryReason = "Unarchived"
	// ReasonDeleted: the Production ModelVersion was deleted; the previous Production version was
	// restored, as for a retirement.
	ReasonDeleted HistoryReason = "Deleted"
	// ReasonModelDeleted: the RegisteredModel was deleted; its Production version, if any, stopped
	// serving. Only a StageRecord holds it, since the model's status goes with the model.
	ReasonModelDeleted HistoryReason = "ModelDeleted"
	// ReasonAnalysisPassed: the candidate passed every canary step and became Production.
	ReasonAnalysisPassed HistoryReason = "AnalysisPassed"
	// ReasonAnalysisFailed: an online gate failed, or stayed inconclusive past its limit, during
	// the version's canary (it is Archived) or its bake (it is Archived and the previous
	// Production version restored).
	ReasonAnalysisFailed HistoryReason = "AnalysisFailed"
)

// HistoryEntry is one stage transition of one version.
type HistoryEntry struct {
	// version is the version number that changed stage; 0 in the ModelDeleted record of a model
	// that had no Production version.
	// +required
	Version int64 `json:"version"`

	// versionUID is the UID of the ModelVersion that changed stage: a version deleted and
	// registered again under the same number is another object, which never served. Absent in
	// entries written before it was recorded.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	VersionUID string `json:"versionUID,omitempty"`

	// sequence is the entry's place among every transition the model has recorded, from 1; it
	// names the entry's StageRecord. Absent in entries written before it was recorded.
	// +optional
	Sequence int64 `json:"sequence,omitempty"`

	// from is the stage the version left; absent for a version decided for the first time.
	// +optional
	From Stage `json:"from,omitempty"`

	// to is the stage the version entered.
	// +required
	To Stage `json:"to"`

	// reason is a CamelCase word: GatesPassed, GatesFailed, ManualRequest, Rollback, Superseded,
	// RolledBack, ArchiveRequest, Restored, Unarchived, RolloutFailed, Deleted, AnalysisPassed,
	// AnalysisFailed; ModelDeleted in a StageRecord alone.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Reason HistoryReason `json:"reason"`

	// message says what happened in words, with the numbers that decided it.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// time is when the operator made the change.
	// +required
	Time metav1.Time `json:"time"`

	// by is who caused the change: for a change a spec.stage request caused (the promotion, and
	// the version it replaced or restored), the user who last changed spec.stage, as the
	// ml.podium.dev/stage-requested-by annotation records it; podium for the operator's own
	// decisions (gates, rollouts, deletions). Absent when a request's author is unknown: the
	// version carries no such annotation (the governance admission policies are not installed).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	By string `json:"by,omitempty"`
}

// DefaultHistoryLimit is how many transitions a RegisteredModel keeps when its spec.historyLimit
// is not set; the oldest are dropped first.
const DefaultHistoryLimit = 100

// MaxHistoryLimit is the largest spec.historyLimit, and status.history's bound.
const MaxHistoryLimit = 500

// HistoryLimit is how many transitions the model keeps: spec.historyLimit, else
// DefaultHistoryLimit (the API server defaults it, but an object read from a cluster whose CRD
// predates the field has none).
func (m *RegisteredModel) HistoryLimit() int {
	if m.Spec.HistoryLimit == nil || *m.Spec.HistoryLimit < 1 {
		return DefaultHistoryLimit
	}
	return int(*m.Spec.HistoryLimit)
}

// HandledRequest is a stage request the operator acted on: the ModelVersion, and the generation
// of its spec at the request.
type HandledRequest struct {
	// versionUID is the ModelVersion's UID.
	// +required
	// +kubebuilder:validation:MaxLength=128
	VersionUID string `json:"versionUID"`

	// generation is the ModelVersion's metadata.generation when the operator acted on its
	// spec.stage; a later request (spec.stage cleared and written again) has a higher one.
	// +required
	Generation int64 `json:"generation"`
}

// MaxHandledRequests is how many handled requests a RegisteredModel's status keeps.
const MaxHandledRequests = 32

// MaxRequestNote is the longest status.requestNote of a ModelVersion, in characters.
const MaxRequestNote = 1024

// MaxHistoryMessage is the longest history message, in characters; longer ones are shortened.
const MaxHistoryMessage = 1024

// RegisteredModelStatus is what the operator decided and observed for the model.
type RegisteredModelStatus struct {
	// conditions hold Ready (the decision is made and written to every version), Reconciling and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// productionVersion is the version number in Production; absent when there is none.
	// This field is the single source of truth: each version's status.stage follows it.
	// +optional
	ProductionVersion *int64 `json:"productionVersion,omitempty"`

	// productionVersionUID is the UID of the ModelVersion object in Production. Another object
	// that claims the same number later (the first one deleted) is a different version.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ProductionVersionUID string `json:"productionVersionUID,omitempty"`

	// decisionSequence counts the decisions that put a version into Production or take one out.
	// The operator writes it, conditional on the resourceVersion it read, before it writes a
	// version's stage, so that a decision made on an older view is never carried out
	// (docs/concepts.md).
	// +optional
	DecisionSequence int64 `json:"decisionSequence,omitempty"`

	// handledRequests identifies the newest stage requests the operator acted on, by the
	// ModelVersion's UID and the generation its spec.stage was written at. The model is written
	// before its versions, so a view of the versions that lags behind (a cache, or another API
	// server's watch cache) may still show a request as not yet acted on: a request listed here
	// is never acted on again. The newest MaxHandledRequests are kept.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	HandledRequests []HandledRequest `json:"handledRequests,omitempty"`

	// automaticPromotionFloor is the version number above which automatic promotion looks for a
	// candidate. It is the Production version after an automatic promotion, and the newest
	// version that existed when a person asked for the current Production version, so that a
	// rollback holds until a newer version is registered.
	// +optional
	AutomaticPromotionFloor int64 `json:"automaticPromotionFloor,omitempty"`

	// latestVersion is the highest version number ever registered for the model. It does not go
	// down when a version is deleted: requests are ordered after it.
	// +optional
	LatestVersion *int64 `json:"latestVersion,omitempty"`

	// versionCount is how many ModelVersions belong to the model.
	// +optional
	VersionCount int32 `json:"versionCount,omitempty"`

	// serving reports the prediction Deployment; absent when spec.serving is not set.
	// +optional
	Serving *ServingStatus `json:"serving,omitempty"`

	// rollout is the current or last rollout with spec.serving.rollout: the candidate, the step,
	// the weight and the online gates' measurements.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`

	// history lists stage transitions, newest last, at most spec.historyLimit.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=500
	History []HistoryEntry `json:"history,omitempty"`

	// recordedSequence is a history entry's sequence up to which the StageRecords are written:
	// the records of the entries after it are written (again, when they exist) by a reconcile
	// whose manager did not write them itself, as after a crash between the two writes. It moves
	// with the model's writes of decisions, so it may lag the records.
	// +optional
	RecordedSequence int64 `json:"recordedSequence,omitempty"`
}

// ServingStatus reports the prediction Deployment of a model.
type ServingStatus struct {
	// deploymentName is the prediction Deployment's name.
	// +optional
	DeploymentName string `json:"deploymentName,omitempty"`

	// serviceName is the prediction Service's name.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// version is the version every prediction pod serves: set once its pods are all updated and
	// available, and kept while only their number changes; absent while none is.
	// +optional
	Version *int64 `json:"version,omitempty"`

	// readyReplicas is the number of ready prediction pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// stagingVersion is the Staging version the staging Deployment runs on all its pods; absent
	// without spec.serving.staging or while none does.
	// +optional
	StagingVersion *int64 `json:"stagingVersion,omitempty"`

	// rolloutStartTime is when the rollout of the Production version began; absent once it serves.
	// +optional
	RolloutStartTime *metav1.Time `json:"rolloutStartTime,omitempty"`
}

// RegisteredModel is a model whose versions are promoted through None, Staging, Production and
// Archived by quality gates and by requests on the versions.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rm,categories=podium
// +kubebuilder:printcolumn:name="Production",type=integer,JSONPath=`.status.productionVersion`
// +kubebuilder:printcolumn:name="Latest",type=integer,JSONPath=`.status.latestVersion`
// +kubebuilder:printcolumn:name="Serving",type=integer,JSONPath=`.status.serving.version`
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.status.rollout.phase`
// +kubebuilder:printcolumn:name="Candidate",type=integer,JSONPath=`.status.rollout.version`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.rollout.weight`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.promotion.mode`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 45",message="a RegisteredModel name may have at most 45 characters, so that the names of the objects derived from it (such as <name>-predictor-staging) stay within 63"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a RegisteredModel name must start with a lowercase letter and hold only lowercase letters, digits and '-', such as battle-winner-predictor"
type RegisteredModel struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec defines the model and its promotion policy.
	// +required
	Spec RegisteredModelSpec `json:"spec"`

	// status is what the operator decided.
	// +optional
	Status RegisteredModelStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// RegisteredModelList contains a list of RegisteredModel.
type RegisteredModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []RegisteredModel `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(scheme *runtime.Scheme) error {
		scheme.AddKnownTypes(SchemeGroupVersion, &RegisteredModel{}, &RegisteredModelList{})
		return nil
	})
}
