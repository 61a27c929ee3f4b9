package controller

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
)

// modelStatus is the model's status after decision d. Conditions keep their transition times
// when their status does not change.
func modelStatus(model *mlv1.RegisteredModel, versionCount int, d promotion.Decision, now time.Time) mlv1.RegisteredModelStatus {
	s := *model.Status.DeepCopy()
	s.ObservedGeneration = model.Generation
	s.ProductionVersion = d.Production
	s.AutomaticPromotionFloor = d.Floor
	s.LatestVersion = d.Latest
	s.VersionCount = int32(versionCount)
	s.History = promotion.AppendHistory(s.History, d.Transitions, now)

	msg := "No version is Production"
	if d.Production != nil {
		msg = fmt.Sprintf("Version %d is Production", *d.Production)
	}
	setReady(&s.Conditions, model.Generation, metav1.ConditionTrue, mlv1.ReasonReconciled, msg)
	return s
}

// versionStatus is a version's status after decision vd of its model.
func versionStatus(model *mlv1.RegisteredModel, v *mlv1.ModelVersion, vd promotion.VersionDecision) mlv1.ModelVersionStatus {
	s := *v.Status.DeepCopy()
	s.ObservedGeneration = v.Generation
	s.Stage = vd.Stage
	s.ObservedStageRequest = vd.ObservedRequest
	s.Gates = vd.Gates.Results
	s.PrimaryMetric = vd.PrimaryMetric

	gates := metav1.ConditionFalse
	if vd.Gates.Passed {
		gates = metav1.ConditionTrue
	}
	setCondition(&s.Conditions, v.Generation, mlv1.ConditionGatesPassed, gates, vd.Gates.Reason, vd.Gates.Message)

	if vd.Duplicate && vd.Stage != mlv1.StageProduction {
		msg := fmt.Sprintf("Another ModelVersion of %s claims version %d; neither can be promoted until one is deleted",
			model.Name, v.Spec.Version)
		setReady(&s.Conditions, v.Generation, metav1.ConditionFalse, mlv1.ReasonDuplicateVersion, msg)
		setCondition(&s.Conditions, v.Generation, mlv1.ConditionStalled, metav1.ConditionTrue, mlv1.ReasonDuplicateVersion, msg)
		return s
	}
	msg := fmt.Sprintf("Stage %s", vd.Stage)
	if vd.Note != "" {
		msg += ": " + vd.Note
	}
	setReady(&s.Conditions, v.Generation, metav1.ConditionTrue, mlv1.ReasonReconciled, msg)
	return s
}

// orphanStatus is the status of a version whose RegisteredModel does not exist.
func orphanStatus(v *mlv1.ModelVersion, model string) mlv1.ModelVersionStatus {
	s := *v.Status.DeepCopy()
	s.ObservedGeneration = v.Generation
	msg := fmt.Sprintf("RegisteredModel %s does not exist in namespace %s; the version is decided as soon as it is created",
		model, v.Namespace)
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: mlv1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: mlv1.ReasonModelNotFound, Message: msg, ObservedGeneration: v.Generation})
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: mlv1.ConditionReconciling, Status: metav1.ConditionTrue,
		Reason: mlv1.ReasonModelNotFound, Message: msg, ObservedGeneration: v.Generation})
	meta.RemoveStatusCondition(&s.Conditions, mlv1.ConditionStalled)
	return s
}

// setReady sets Ready and the kstatus conditions that go with it: Reconciling and Stalled are
// removed when Ready is True.
func setReady(conds *[]metav1.Condition, generation int64, status metav1.ConditionStatus, reason, msg string) {
	setCondition(conds, generation, mlv1.ConditionReady, status, reason, msg)
	if status == metav1.ConditionTrue {
		meta.RemoveStatusCondition(conds, mlv1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, mlv1.ConditionStalled)
	}
}

func setCondition(conds *[]metav1.Condition, generation int64, t string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
}
