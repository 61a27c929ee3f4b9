package v1alpha1

// The governance admission policies (config/governance) stamp these annotations on ModelVersions
// from the identity of the request, and refuse any other value.
const (
	// AnnotationRegisteredBy is the user who created the ModelVersion.
	AnnotationRegisteredBy = "ml.podium.dev/registered-by"
	// AnnotationStageRequestedBy is the user who last set or changed spec.stage.
	AnnotationStageRequestedBy = "ml.podium.dev/stage-requested-by"
)

// ByOperator is a history entry's by for the operator's own decisions.
const ByOperator = "podium"
