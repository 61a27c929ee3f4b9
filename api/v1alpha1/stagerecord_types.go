package v1alpha1

import (
	"cmp"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Labels of a StageRecord, so that the records of a model are listed without reading them all.
const (
	// LabelRecordModel is the name of the RegisteredModel a StageRecord is about.
	LabelRecordModel = "ml.podium.dev/registered-model"
	// LabelRecordModelUID is the UID of that RegisteredModel: a model deleted and created again
	// under the same name is another model, with records of its own.
	LabelRecordModelUID = "ml.podium.dev/registered-model-uid"
)

// DefaultStageRecordsPerModel is how many StageRecords the operator keeps for one model name
// (across the models created under it) unless --stage-records-per-model says otherwise; the
// oldest are deleted first.
const DefaultStageRecordsPerModel = 1000

// RecordedModel names the RegisteredModel of a StageRecord.
type RecordedModel struct {
	// name is the RegisteredModel's name.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// uid is the RegisteredModel's UID.
	// +required
	// +kubebuilder:validation:MaxLength=128
	UID string `json:"uid"`
}

// RecordedVersion is the ModelVersion of a StageRecord, as it was at the transition.
type RecordedVersion struct {
	// number is the version number.
	// +required
	Number int64 `json:"number"`

	// name is the ModelVersion's name; absent when the transition's ModelVersion was already
	// deleted when the record was written.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// uid is the ModelVersion's UID; absent for a transition recorded before the model's history
	// carried it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	UID string `json:"uid,omitempty"`

	// registeredBy is who created the ModelVersion, from its ml.podium.dev/registered-by
	// annotation; absent without the governance admission policies.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	RegisteredBy string `json:"registeredBy,omitempty"`

	// artifactURI is the version's spec.artifact.uri.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	ArtifactURI string `json:"artifactURI,omitempty"`

	// digest is the version's spec.artifact.digest, the bundle digest it was verified against.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	Digest string `json:"digest,omitempty"`
}

// StageRecord is one stage transition of one ModelVersion, as the operator decided it: written
// once, never changed (the API server refuses any change of its content), and kept after the
// model and its versions are deleted, until the operator's retention bound or the namespace's
// deletion removes it. The operator writes one for each entry of a model's status.history.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=sr,categories=podium
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.model.name`
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.version.number`
// +kubebuilder:printcolumn:name="From",type=string,JSONPath=`.transition.from`
// +kubebuilder:printcolumn:name="To",type=string,JSONPath=`.transition.to`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.transition.reason`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.transition.by`
// +kubebuilder:printcolumn:name="Time",type=date,JSONPath=`.transition.time`
// +kubebuilder:validation:XValidation:rule="has(self.gates) == has(oldSelf.gates) && has(self.measurements) == has(oldSelf.measurements)",message="a StageRecord is a record: its content cannot be changed"
type StageRecord struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// model is the RegisteredModel that decided the transition.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a StageRecord is a record: its content cannot be changed"
	Model RecordedModel `json:"model"`

	// version is the ModelVersion that changed stage.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a StageRecord is a record: its content cannot be changed"
	Version RecordedVersion `json:"version"`

	// transition is the change of stage, as the model's status.history holds it, with its
	// sequence: the entry's place in everything the model ever recorded, from 1.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a StageRecord is a record: its content cannot be changed"
	Transition HistoryEntry `json:"transition"`

	// gates are the model's gates evaluated against the version's metrics at the transition.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a StageRecord is a record: its content cannot be changed"
	Gates []GateResult `json:"gates,omitempty"`

	// measurements are the online gates' measurements of the version's canary at the transition,
	// when the version had one.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a StageRecord is a record: its content cannot be changed"
	Measurements []MetricStatus `json:"measurements,omitempty"`
}

// SortStageRecords orders StageRecords oldest first: by time, then, within one model, by sequence.
func SortStageRecords(recs []StageRecord) {
	slices.SortStableFunc(recs, func(a, b StageRecord) int {
		return cmp.Or(a.Transition.Time.Compare(b.Transition.Time.Time),
			cmp.Compare(a.Model.UID, b.Model.UID), cmp.Compare(a.Transition.Sequence, b.Transition.Sequence))
	})
}

// +kubebuilder:object:root=true

// StageRecordList contains a list of StageRecord.
type StageRecordList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []StageRecord `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(scheme *runtime.Scheme) error {
		scheme.AddKnownTypes(SchemeGroupVersion, &StageRecord{}, &StageRecordList{})
		return nil
	})
}
