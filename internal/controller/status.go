package controller

import (
	"cmp"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/conditions"
	"github.com/podium-dev/podium/internal/promotion"
	"github.com/podium-dev/podium/internal/rollout"
	"github.com/podium-dev/podium/internal/serving"
)

// modelStatus is the model's status after decision d and the serving plan. Conditions keep their
// transition times when their status does not change.
func modelStatus(model *mlv1.RegisteredModel, versionCount int, d promotion.Decision, plan servingState,
	ro *mlv1.RolloutStatus, now time.Time) mlv1.RegisteredModelStatus {
	s := *model.Status.DeepCopy()
	s.ObservedGeneration = model.Generation
	s.ProductionVersion = d.Production
	s.ProductionVersionUID = d.ProductionUID
	s.AutomaticPromotionFloor = d.Floor
	s.LatestVersion = d.Latest
	s.VersionCount = int32(versionCount)
	s.History = promotion.AppendHistory(s.History, d.Transitions, now, model.HistoryLimit())
	s.HandledRequests = d.Handled
	s.Serving = servingStatus(model, d, plan, now)
	s.Rollout = ro.DeepCopy()
	rollout.BoundMessages(s.Rollout)

	summarize := func(p conditions.Progress, ready metav1.ConditionStatus, reason, msg string) {
		conditions.Summarize(&s.Conditions, model.Generation, now, p, ready, reason, msg)
	}
	switch {
	case plan.problem != "":
		summarize(conditions.Blocked, metav1.ConditionFalse, plan.problem, plan.message)
	case ro.Canary() && ro.Phase == mlv1.RolloutPaused && pauseRequested(model):
		summarize(conditions.Blocked, metav1.ConditionFalse, mlv1.ReasonPausedByAnnotation, ro.Message)
	case ro.Canary() && ro.Phase == mlv1.RolloutPaused:
		summarize(conditions.Blocked, metav1.ConditionFalse, mlv1.ReasonAnalysisInconclusive, ro.Message)
	case ro.Canary():
		summarize(conditions.InProgress, metav1.ConditionFalse, mlv1.ReasonCanaryProgressing,
			fmt.Sprintf("Canary of version %d: %s", ro.Version, ro.Message))
	case d.Production == nil:
		summarize(conditions.Done, metav1.ConditionTrue, mlv1.ReasonNoProduction, "No version is Production")
	case plan.enabled && !sameVersion(plan.rolledOut(), d.Production):
		msg := fmt.Sprintf("Rolling out version %d", *d.Production)
		if o := plan.observed; o != nil && sameVersion(o.TemplateVersion, d.Production) {
			msg += fmt.Sprintf(": %d of %d pods updated, %d ready", o.UpdatedReplicas, o.Replicas, o.ReadyReplicas)
		}
		if plan.podProblem != "" {
			msg = promotion.Shorten(msg+"; "+plan.podProblem, conditions.MaxMessage)
		}
		summarize(conditions.InProgress, metav1.ConditionFalse, mlv1.ReasonRollingOut, msg)
	case ro.Active() && ro.Phase == mlv1.RolloutBaking:
		summarize(conditions.InProgress, metav1.ConditionFalse, mlv1.ReasonBaking, ro.Message)
	case plan.enabled:
		summarize(conditions.Done, metav1.ConditionTrue, mlv1.ReasonRolledOut,
			fmt.Sprintf("Version %d is Production and serves on %d ready pods", *d.Production, plan.observed.ReadyReplicas))
	default:
		summarize(conditions.Done, metav1.ConditionTrue, mlv1.ReasonReconciled,
			fmt.Sprintf("Version %d is Production", *d.Production))
	}
	return s
}

// servingStatus reports the prediction Deployment, as observed before this reconcile applied
// anything: a change it applies is reported when the Deployment reports it.
func servingStatus(model *mlv1.RegisteredModel, d promotion.Decision, plan servingState, now time.Time) *mlv1.ServingStatus {
	if !plan.enabled {
		return nil
	}
	s := &mlv1.ServingStatus{
		DeploymentName: serving.DeploymentName(model.Name),
		ServiceName:    serving.ServiceName(model.Name),
		Version:        plan.servedVersion(),
	}
	if plan.observed != nil {
		s.ReadyReplicas = plan.observed.ReadyReplicas
	}
	if plan.staging != nil && plan.stagingLive != nil {
		if o := serving.Observe(plan.stagingLive); o.Serving {
			s.StagingVersion = o.TemplateVersion
		}
	}
	if d.Production != nil && !sameVersion(s.Version, d.Production) {
		s.RolloutStartTime = &metav1.Time{Time: now}
		if old := model.Status.Serving; old != nil && old.RolloutStartTime != nil {
			s.RolloutStartTime = old.RolloutStartTime
		}
	}
	return s
}

// rolloutEnded returns when a rollout began, if the status change from old to updated ends it:
// the Production version now serves.
func rolloutEnded(old, updated *mlv1.ServingStatus) *metav1.Time {
	if old == nil || updated == nil || old.RolloutStartTime == nil || updated.RolloutStartTime != nil || updated.Version == nil {
		return nil
	}
	return old.RolloutStartTime
}

func sameVersion(a, b *int64) bool { return a != nil && b != nil && *a == *b }

// versionStatus is a version's status after decision vd of its model and the serving plan.
func versionStatus(model *mlv1.RegisteredModel, v *mlv1.ModelVersion, vd promotion.VersionDecision,
	plan servingState, now time.Time) mlv1.ModelVersionStatus {
	s := *v.Status.DeepCopy()
	s.ObservedGeneration = v.Generation
	s.RegisteredModelUID = string(model.UID)
	s.Stage = vd.Stage
	if vd.ObservedRequest != v.Status.ObservedStageRequest || vd.ObservedRequestID != v.Status.ObservedStageRequestID {
		s.RequestNote = promotion.Shorten(vd.RequestNote, mlv1.MaxRequestNote)
	}
	s.ObservedStageRequest, s.ObservedStageRequestID = vd.ObservedRequest, vd.ObservedRequestID
	s.Gates = vd.Gates.Results
	s.PrimaryMetric = vd.PrimaryMetric

	gates := metav1.ConditionFalse
	if vd.Gates.Passed {
		gates = metav1.ConditionTrue
	}
	conditions.Set(&s.Conditions, v.Generation, now, mlv1.ConditionGatesPassed, gates, vd.Gates.Reason, vd.Gates.Message)

	setServing(&s.Conditions, v, vd, plan, now)

	if vd.Duplicate && vd.Stage != mlv1.StageProduction {
		msg := fmt.Sprintf("Another ModelVersion of %s claims version %d; neither can be promoted until one is deleted",
			model.Name, v.Spec.Version)
		conditions.Summarize(&s.Conditions, v.Generation, now, conditions.Blocked, metav1.ConditionFalse,
			mlv1.ReasonDuplicateVersion, msg)
		return s
	}
	msg := fmt.Sprintf("Stage %s", vd.Stage)
	if note := cmp.Or(vd.Note, s.RequestNote); note != "" {
		msg += ": " + note
	}
	conditions.Summarize(&s.Conditions, v.Generation, now, conditions.Done, metav1.ConditionTrue, mlv1.ReasonReconciled, msg)
	return s
}

// setServing sets the Serving condition of a version of a model with spec.serving.
func setServing(conds *[]metav1.Condition, v *mlv1.ModelVersion, vd promotion.VersionDecision, plan servingState,
	now time.Time) {
	if !plan.enabled {
		conditions.Remove(conds, mlv1.ConditionServing)
		return
	}
	setCondition := func(status metav1.ConditionStatus, reason, msg string) {
		conditions.Set(conds, v.Generation, now, mlv1.ConditionServing, status, reason, msg)
	}
	served := plan.servedVersion()
	switch {
	case served != nil && *served == v.Spec.Version:
		setCondition(metav1.ConditionTrue, mlv1.ReasonRolledOut,
			fmt.Sprintf("Every prediction pod serves this version's bundle (%d ready)", plan.observed.ReadyReplicas))
	case plan.canaryUID != "" && plan.canaryUID == string(v.UID):
		setCondition(metav1.ConditionFalse, mlv1.ReasonCanaryProgressing,
			"The candidate of a canary rollout: it gets "+plan.canaryShare)
	case vd.Stage == mlv1.StageProduction:
		msg := "The prediction Deployment is rolling out this version"
		if plan.podProblem != "" { // the version's own condition says why its pods do not start
			msg = promotion.Shorten(msg+"; "+plan.podProblem, conditions.MaxMessage)
		}
		setCondition(metav1.ConditionFalse, mlv1.ReasonRollingOut, msg)
	default:
		setCondition(metav1.ConditionFalse, mlv1.ReasonNotServing,
			"The prediction Deployment does not run this version")
	}
}

// orphanStatus is the status of a version whose RegisteredModel does not exist: it waits, in
// progress, and is decided as soon as the model is created.
func orphanStatus(v *mlv1.ModelVersion, model string, now time.Time) mlv1.ModelVersionStatus {
	s := *v.Status.DeepCopy()
	s.ObservedGeneration = v.Generation
	msg := fmt.Sprintf("RegisteredModel %s does not exist in namespace %s; the version is decided as soon as it is created",
		model, v.Namespace)
	conditions.Summarize(&s.Conditions, v.Generation, now, conditions.InProgress, metav1.ConditionFalse,
		mlv1.ReasonModelNotFound, msg)
	return s
}
