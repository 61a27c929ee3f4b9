package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Stage is where a version stands in the model's life cycle.
// +kubebuilder:validation:Enum=None;Staging;Production;Archived
type Stage string

const (
	// StageNone: the version does not pass the gates (or a gate's metric is missing).
	StageNone Stage = "None"
	// StageStaging: the version passes the gates and waits; it is not and never was Production.
	StageStaging Stage = "Staging"
	// StageProduction: the version serves. At most one version of a model is Production at any instant.
	StageProduction Stage = "Production"
	// StageArchived: the version was Production and was replaced, was superseded by a newer
	// Production version, or was retired on request.
	StageArchived Stage = "Archived"
)

// Artifact locates the model bundle (model, scalers, metadata) of a version.
// An oci:// URI pins the manifest by its digest; artifact.digest is the digest of the files it
// unpacks to, which cannot be the manifest's (see docs/bundles.md).
// +kubebuilder:validation:XValidation:rule="!has(self.digest) || !self.uri.startsWith('oci://') || !self.uri.endsWith('@' + self.digest)",message="artifact.digest is the digest of the bundle's files (kubectl podium digest DIR), not the manifest digest that the oci:// URI already pins; leave it out, or set the digest of the bundle's files"
type Artifact struct {
	// uri is the root of the bundle. Supported schemes: s3, gs, azblob, http, https, file, pvc
	// (pvc://<claim>/<path>) and oci (oci://<registry>/<repository>@sha256:<manifest digest>).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// The rules below are the fetcher's parser (internal/bundle.ParseURI) written as CEL, so that
	// a URI the fetcher would refuse is refused at apply time; a test holds the two together.
	// +kubebuilder:validation:XValidation:rule="self.matches('^(s3|gs|azblob|http|https|file|pvc|oci)://.+')",message="artifact.uri must start with one of s3://, gs://, azblob://, http://, https://, file://, pvc://, oci:// and name a location, such as s3://ml-artifacts/battle-winner/4/"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(s3|gs|azblob|file|pvc|oci)://') || !self.matches('[?#]')",message="an s3, gs, azblob, file, pvc or oci artifact.uri takes no query (?) or fragment (#): the store's settings come from the fetcher's flags and the model's storage Secret"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(s3|gs|azblob|file|pvc|oci)://[^/]*@')",message="an s3, gs, azblob, file, pvc or oci artifact.uri takes no credentials (user@): put them in the Secret named by the model's spec.serving.storageSecretName"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(s3|gs|azblob|pvc)://') || self.matches('^(s3|gs|azblob|pvc)://[^/:@?#]+(/|$)')",message="artifact.uri must name the bucket, container or claim: s3://BUCKET/PREFIX/, gs://BUCKET/PREFIX/, azblob://CONTAINER/PREFIX/ or pvc://CLAIM/PATH"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('file://') || self.matches('^file://(localhost)?/')",message="a file artifact.uri names an absolute local directory: file:///ABSOLUTE/PATH/"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^https?://') || self.matches('^https?://([^/?#@]*@)?([A-Za-z0-9._~-]+|[[][0-9A-Fa-f:.]+[]])(:[0-9]+)?/[^?#]*[.]([tT][aA][rR]|[tT][aA][rR][.][gG][zZ]|[tT][gG][zZ])([?#].*)?$')",message="an http(s) artifact.uri names a host and a .tar, .tar.gz or .tgz archive of the bundle (HTTP cannot list a directory), such as https://models.example.com/battle-winner/4.tar.gz"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('oci://') || self.matches('@sha256:[a-f0-9]{64}$')",message="an oci artifact.uri must be pinned by the manifest's digest, as oci://REGISTRY/REPOSITORY@sha256:DIGEST, not by a tag alone: kubectl podium push prints the pinned reference, and kubectl podium digest oci://REGISTRY/REPOSITORY:TAG resolves a tag"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('oci://') || self.matches('^oci://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[[][0-9A-Fa-f:.]+[]])(:[0-9]+)?/[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$')",message="an oci artifact.uri is oci://REGISTRY[:PORT]/REPOSITORY[:TAG]@sha256:DIGEST, the repository in lowercase letters, digits and the separators . _ __ - /"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\x00-\\x1f\\x7f]') && !self.matches('^[^?#]*%([^0-9A-Fa-f]|.[^0-9A-Fa-f]|.?$)')",message="artifact.uri holds a control character or a % not followed by two hex digits; escape it as %XX"
	URI string `json:"uri"`

	// digest is the bundle digest, "sha256:" and 64 lowercase hex digits, as printed by
	// `kubectl podium digest DIR`. When set, the bundle is verified before it serves.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	// +kubebuilder:validation:XValidation:rule="self.matches('^sha256:[a-f0-9]{64}$')",message="artifact.digest must be sha256: followed by 64 lowercase hex digits, as printed by 'kubectl podium digest DIR'"
	Digest string `json:"digest,omitempty"`
}

// Source records where a version came from.
type Source struct {
	// runID is the training run's identifier.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	RunID string `json:"runID,omitempty"`

	// experiment is the experiment the run belongs to.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Experiment string `json:"experiment,omitempty"`

	// uri links to the run in a tracking system.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URI string `json:"uri,omitempty"`
}

// ModelVersionSpec is one registered version of a model: its metrics and its bundle.
type ModelVersionSpec struct {
	// registeredModel is the name of the RegisteredModel, in the same namespace, that the version belongs to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="registeredModel cannot be changed; register a new ModelVersion instead"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="registeredModel must be the name of a RegisteredModel in the version's namespace: a lowercase letter, then lowercase letters, digits and '-', such as battle-winner-predictor (no namespace: a version belongs to a model of its own namespace)"
	RegisteredModel string `json:"registeredModel"`

	// version is the version number, 1 or more, unique within the model. Numbers order events
	// (see docs/concepts.md), so the largest allowed is 2^53-1, which every JSON client reads exactly.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9007199254740991
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="version cannot be changed; register a new ModelVersion instead"
	Version int64 `json:"version"`

	// description says what the version is, such as "RandomForest - Accuracy: 0.8723".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// artifact locates the version's bundle.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="artifact cannot be changed; register a new ModelVersion instead"
	Artifact Artifact `json:"artifact"`

	// metrics are the version's evaluation results, as plain numbers: test_accuracy: 0.8723.
	// Names start with a letter or '_' and hold letters, digits, '_', '.', '-' and '/', at most 63 characters.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 63 && k.matches('^[A-Za-z_][A-Za-z0-9_./-]*$'))",message="metric names start with a letter or '_', hold only letters, digits, '_', '.', '-' and '/', and have at most 63 characters"
	Metrics map[string]Number `json:"metrics,omitempty"`

	// params are the training parameters, as strings.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 63)",message="parameter names have at most 63 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].size() <= 256)",message="parameter values have at most 256 characters"
	Params map[string]string `json:"params,omitempty"`

	// source records the training run the version came from.
	// +optional
	Source *Source `json:"source,omitempty"`

	// stage is a request: Production promotes this version now (a rollback when it is older
	// than the current one, even if its gates no longer pass); Archived retires it; Staging
	// returns an Archived version to the candidates; None, or no value, asks for nothing.
	// A request is acted on once, when it changes; status.stage is the truth.
	// +optional
	Stage Stage `json:"stage,omitempty"`

	// stageRequestID tells one request from another for the same stage: writing a new value with
	// spec.stage makes it a new request, which the operator acts on although spec.stage did not
	// change (to promote again a version whose earlier promotion was replaced, in one write that
	// governance admits or refuses as a whole). kubectl podium writes one; a GitOps manifest may
	// change it in a reviewed commit. Re-applying the same manifest is never a new request.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$')",message="stageRequestID holds letters, digits and - _ . :, starting and ending with a letter or digit, such as 20261207T012345Z-3f9a"
	StageRequestID string `json:"stageRequestID,omitempty"`
}

// GateResult is one gate evaluated against one version.
type GateResult struct {
	// metric is the gate's metric.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Metric string `json:"metric"`

	// value is the version's value for the metric; absent when the version does not report it.
	// +optional
	Value *Number `json:"value,omitempty"`

	// bound is the gate in words, such as ">= 0.85" or "<= 0.05".
	// +required
	// +kubebuilder:validation:MaxLength=128
	Bound string `json:"bound"`

	// passed says whether the value meets the bound.
	// +required
	Passed bool `json:"passed"`
}

// ModelVersionStatus reports the stage the RegisteredModel's policy decided for the version.
type ModelVersionStatus struct {
	// conditions hold Ready (the version is reconciled), GatesPassed and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// stage is the version's stage: None, Staging, Production or Archived.
	// +optional
	Stage Stage `json:"stage,omitempty"`

	// observedStageRequest is the spec.stage value the operator has acted on. A request is acted on
	// when spec.stage differs from it; clearing spec.stage clears it.
	// +optional
	ObservedStageRequest Stage `json:"observedStageRequest,omitempty"`

	// observedStageRequestID is the spec.stageRequestID of the request in observedStageRequest.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ObservedStageRequestID string `json:"observedStageRequestID,omitempty"`

	// requestNote says why the operator did not carry out the request in observedStageRequest,
	// for example a Production request first seen together with one for a newer version, which
	// wins; empty when it was carried out. It is replaced when spec.stage changes.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	RequestNote string `json:"requestNote,omitempty"`

	// registeredModelUID is the UID of the RegisteredModel that decided this status. A model
	// deleted and created again is a new model: it does not inherit stages decided by the old one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	RegisteredModelUID string `json:"registeredModelUID,omitempty"`

	// decisionSequence is the model's status.decisionSequence when the operator last wrote this
	// status. Writing it fences off a promotion decided on an older view (docs/concepts.md).
	// +optional
	DecisionSequence int64 `json:"decisionSequence,omitempty"`

	// gates are the model's gates evaluated against this version's metrics.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Gates []GateResult `json:"gates,omitempty"`

	// primaryMetric is the model's first gate metric and this version's value, such as
	// "test_accuracy=0.8723"; shown by `kubectl get modelversions`.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	PrimaryMetric string `json:"primaryMetric,omitempty"`
}

// ModelVersion is one registered version of a RegisteredModel, with its metrics and bundle.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mv,categories=podium
// +kubebuilder:selectablefield:JSONPath=`.spec.registeredModel`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.registeredModel`
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.status.stage`
// +kubebuilder:printcolumn:name="Metric",type=string,JSONPath=`.status.primaryMetric`
// +kubebuilder:printcolumn:name="Requested",type=string,JSONPath=`.spec.stage`,priority=1
// +kubebuilder:printcolumn:name="URI",type=string,JSONPath=`.spec.artifact.uri`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ModelVersion struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is the version's registration.
	// +required
	Spec ModelVersionSpec `json:"spec"`

	// status is the stage decided for the version.
	// +optional
	Status ModelVersionStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ModelVersionList contains a list of ModelVersion.
type ModelVersionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ModelVersion `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(scheme *runtime.Scheme) error {
		scheme.AddKnownTypes(SchemeGroupVersion, &ModelVersion{}, &ModelVersionList{})
		return nil
	})
}
