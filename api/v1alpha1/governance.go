package v1alpha1

// The governance admission policies (config/governance) stamp these annotations on ModelVersions
// from the identity of the request, and refuse any other value.
const (
	// AnnotationRegisteredBy is the user who created the ModelVersion.
	AnnotationRegisteredBy = "ml.podium.dev/registered-by"
	// AnnotationStageRequestedBy is the user who last set or changed spec.stage.
	AnnotationStageRequestedBy = "ml.podium.dev/stage-requested-by"
)

// The deletion of a RegisteredModel or a ModelVersion is attributed in two steps: whoever deletes
// it first marks it, setting AnnotationDeleteRequested (kubectl podium delete does both), and the
// policies stamp AnnotationDeleteRequestedBy with the identity of that request. The policies let
// only that user delete a marked object, and in a governed namespace a model with history is
// deleted marked, by an approver. The operator's finalizer then records the deletion, by that
// user: a model's as a StageRecord, its Production version's as the history entry that retires it.
const (
	// AnnotationDeleteRequested marks a RegisteredModel or a ModelVersion for deletion; its value
	// is the request's identity (kubectl podium delete writes the time), and a new value is a new
	// request.
	AnnotationDeleteRequested = "ml.podium.dev/delete-requested"
	// AnnotationDeleteRequestedBy is the user who last set or changed AnnotationDeleteRequested.
	AnnotationDeleteRequestedBy = "ml.podium.dev/delete-requested-by"
)

// FinalizerStageRecords is the operator's finalizer on a RegisteredModel that has history, and on
// the ModelVersion that is Production: before the model goes, the operator writes the StageRecord
// of its deletion; before the version goes, the history entry that retires it, with who marked it.
const FinalizerStageRecords = "ml.podium.dev/stage-records"

// ByOperator is a history entry's by for the operator's own decisions.
const ByOperator = "podium"
