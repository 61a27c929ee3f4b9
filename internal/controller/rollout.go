package controller

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
	"github.com/podium-dev/podium/internal/rollout"
	"github.com/podium-dev/podium/internal/serving"
)

// rolloutSpec is the model's spec.serving.rollout, nil when it has none.
func rolloutSpec(model *mlv1.RegisteredModel) *mlv1.Rollout {
	if model.Spec.Serving == nil {
		return nil
	}
	return model.Spec.Serving.Rollout
}

// canaryStrategy says whether new versions of the model go through a canary.
func canaryStrategy(model *mlv1.RegisteredModel) bool {
	spec := rolloutSpec(model)
	return spec != nil && spec.Strategy == mlv1.RolloutCanary && model.Spec.Serving.Replicas != nil
}

// pauseRequested says whether a person holds the model's canary with the annotation
// ml.podium.dev/pause-rollout: "true".
func pauseRequested(model *mlv1.RegisteredModel) bool {
	return model.Annotations[mlv1.AnnotationPauseRollout] == "true"
}

// measure returns the online gates' measurements of the model's rollout that the measurer has
// taken since the last reconcile, when they are due, and has it take the next ones: one PromQL
// query per metric, for the version under analysis, off the reconcile workers. A query that fails
// is an inconclusive measurement, not an error of the reconcile.
func (r *RegisteredModelReconciler) measure(model *mlv1.RegisteredModel) []rollout.Measurement {
	spec, st := rolloutSpec(model), model.Status.Rollout
	if !rollout.Due(spec, st, r.now()) {
		return nil
	}
	return r.analysis().take(model, spec, st)
}

// measurementResult names a measurement's result for podium_analysis_measurements_total.
func measurementResult(got rollout.Measurement, m mlv1.AnalysisMetric) string {
	switch {
	case got.Err != nil:
		return "inconclusive"
	case rollout.Within(got.Value, m):
		return "passed"
	}
	return "failed"
}

// advanceRollout moves the model's active rollout on by what this reconcile observed, and hands
// its verdict to the promotion rules: the candidate's, or, for a bake, the Production version's.
// It returns the advanced rollout status, nil when there is no active rollout.
func (r *RegisteredModelReconciler) advanceRollout(model *mlv1.RegisteredModel, live, canary *appsv1.Deployment,
	route routeState, measured []rollout.Measurement, in *promotion.Input) (*mlv1.RolloutStatus, rollout.Verdict) {
	in.Canary = canaryStrategy(model)
	spec, st := rolloutSpec(model), model.Status.Rollout
	if spec == nil || !st.Active() {
		return nil, rollout.Undecided
	}
	obs := rollout.Observation{Now: r.now(), Held: pauseRequested(model)}
	if rollout.Due(spec, st, obs.Now) {
		// Counted only once, and only those taken for this view's candidate and step (rollout.Target).
		obs.Measured = measured
	}
	if live != nil {
		if o := serving.Observe(live); o.Serving {
			obs.Serving = o.TemplateVersion
		}
	}
	if canary != nil {
		o := serving.Observe(canary)
		current := sameVersion(o.TemplateVersion, &st.Version)
		want := rollout.Pods(spec, *model.Spec.Serving.Replicas, st)
		// With the Gateway API, a step (or the shadow) begins once its split is on the route too.
		obs.CanaryAvailable = current && o.Serving && o.Replicas == want && routed(model, st, canary, route)
		obs.CanaryFailed = current && o.Failed
	}
	next, verdict := rollout.Advance(spec, *st, obs)
	switch {
	case st.Canary():
		in.Candidate = &promotion.Candidate{Number: st.Version, UID: st.VersionUID, Reason: st.Reason, By: st.RequestedBy,
			Floor: st.Floor, Passed: verdict == rollout.Passed, Failed: verdict == rollout.Failed, Message: next.Message}
	case verdict == rollout.Failed && in.Failed == nil:
		in.Failed = &promotion.Failure{Version: st.Version, Reason: mlv1.ReasonAnalysisFailed,
			Message: "Its bake failed; the previous Production version was restored. " + next.Message}
	}
	return &next, verdict
}

// settleRollout is the model's status.rollout after decision d (rollout.Settle), with the
// candidate's share of the requests as the canary Deployment or the route give it.
func (r *RegisteredModelReconciler) settleRollout(model *mlv1.RegisteredModel, advanced *mlv1.RolloutStatus,
	verdict rollout.Verdict, d promotion.Decision, canary *appsv1.Deployment) *mlv1.RolloutStatus {
	decided := rollout.Decided{Production: d.Production, ProductionUID: d.ProductionUID,
		PromotedAnew: promotedAnew(d)}
	if c := d.Candidate; c != nil {
		decided.Candidate = &rollout.Candidate{Number: c.Number, UID: c.UID, Reason: c.Reason, By: c.By, Floor: c.Floor}
	}
	if st := model.Status.Rollout; st != nil {
		decided.Ended = endedBy(d, st.Version)
	}
	st := rollout.Settle(rolloutSpec(model), model.Status.Rollout, advanced, verdict, model.Status.ProductionVersion,
		decided, r.now())
	if decided.Candidate != nil {
		st.Weight = r.canaryWeight(model, st, canary)
	}
	return st
}

// promotedAnew says whether the decision's new Production version came from the gates or a
// request, the promotions a bake watches, rather than from a rollback or a restoration.
func promotedAnew(d promotion.Decision) bool {
	for _, t := range d.Transitions {
		if t.To == mlv1.StageProduction {
			return t.Reason == mlv1.ReasonGatesPassed || t.Reason == mlv1.ReasonManualRequest
		}
	}
	return false
}

// endedBy says what ended a rollout of version before its analysis concluded.
func endedBy(d promotion.Decision, version int64) string {
	for _, t := range d.Transitions {
		switch {
		case t.Version == version && t.To == mlv1.StageArchived:
			return fmt.Sprintf("Ended: version %d was Archived (%s)", version, t.Reason)
		case t.To == mlv1.StageProduction:
			return fmt.Sprintf("Ended: version %d became Production at once (%s)", t.Version, t.Reason)
		}
	}
	if d.Candidate != nil {
		return fmt.Sprintf("Ended: version %d is the candidate now", d.Candidate.Number)
	}
	return fmt.Sprintf("Ended: version %d is no longer a candidate (its ModelVersion was deleted, or the "+
		"rollout strategy changed)", version)
}

// canaryWeight is the candidate's share of the requests in st: with the Gateway API its weight
// on the route, otherwise the share of the prediction pods that its step gives it.
func (r *RegisteredModelReconciler) canaryWeight(model *mlv1.RegisteredModel, st *mlv1.RolloutStatus,
	canary *appsv1.Deployment) int32 {
	spec := rolloutSpec(model)
	switch {
	case !canaryStrategy(model):
		return 0
	case spec.GatewayAPI() != nil:
		return trafficSplit(model, st, canary).Canary
	}
	replicas := *model.Spec.Serving.Replicas
	return rollout.Weight(replicas, rollout.Pods(spec, replicas, st))
}

// observeCanary reads the model's canary Deployment from the cache; nil when there is none.
func (r *RegisteredModelReconciler) observeCanary(ctx context.Context, model *mlv1.RegisteredModel) (*appsv1.Deployment, error) {
	if model.Spec.Serving == nil {
		return nil, nil
	}
	d := &appsv1.Deployment{}
	err := r.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: serving.CanaryName(model.Name)}, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return d, err
}

// planCanary renders the canary Deployment while a canary runs, and lists it for removal once
// the rollout ended and the stable pods serve the Production version (canaryEnded), so that no
// path out of a canary, an abort at a 100% step included, leaves fewer pods serving than before.
// A new candidate takes over the pods of one whose canary ended only at that same moment.
func (r *RegisteredModelReconciler) planCanary(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, st *mlv1.RolloutStatus, production *int64, live *appsv1.Deployment, check bool,
	s *servingState) error {
	s.canaryLive = live
	if !st.Canary() || !canaryStrategy(model) {
		if live != nil && live.DeletionTimestamp.IsZero() && metav1.IsControlledBy(live, model) &&
			canaryEnded(model, production, s.observed) {
			s.remove = append(s.remove, live)
		}
		return nil
	}
	var candidate *mlv1.ModelVersion
	for i := range versions {
		if string(versions[i].UID) == st.VersionUID {
			candidate = &versions[i]
		}
	}
	if candidate == nil {
		return nil
	}
	if live != nil && live.DeletionTimestamp.IsZero() && !sameVersion(serving.Observe(live).TemplateVersion, &candidate.Spec.Version) &&
		!canaryEnded(model, production, s.observed) {
		// The canary pods run the candidate before this one, whose canary ended: they serve until
		// the stable Deployment serves on every replica again, as they would before a deletion.
		s.canaryUID = st.VersionUID
		s.canaryShare = "no pod yet: the canary pods of the candidate before it serve until the stable pods are back"
		return nil
	}
	replicas := rollout.Pods(model.Spec.Serving.Rollout, *model.Spec.Serving.Replicas, st)
	dep, err := serving.Deployment(serving.Target{Model: model, Version: candidate, FetcherImage: r.FetcherImage,
		Canary: true, Replicas: &replicas, InsecureRegistries: r.InsecureRegistries})
	if errors.Is(err, serving.ErrInvalid) {
		s.problem, s.message = mlv1.ReasonInvalidServing, "Canary: "+err.Error()
		return nil
	}
	if err == nil {
		err = serving.Stamp(dep)
	}
	if err != nil {
		return err
	}
	s.canaryApplied = live != nil && serving.Contains(live, dep)
	switch {
	case !s.canaryApplied && !check:
		s.unchecked = true
	case !s.canaryApplied:
		var liveObj client.Object
		if live != nil {
			liveObj = live
		}
		if err := r.checkApply(ctx, model, candidate, s, pair{dep, liveObj}); err != nil || s.problem != "" {
			return err
		}
	}
	s.canary, s.canaryUID, s.canaryShare = dep, st.VersionUID, canaryShare(model.Spec.Serving.Rollout, st)
	return nil
}

// stableReplicas is the stable Deployment's share of the pods while a canary runs, given the
// canary Deployment as it is (nil when there is none); nil when no canary runs.
func stableReplicas(model *mlv1.RegisteredModel, st *mlv1.RolloutStatus, canary *appsv1.Deployment) *int32 {
	if !st.Canary() || !canaryStrategy(model) {
		return nil
	}
	var available int32
	if canary != nil {
		if o := serving.Observe(canary); sameVersion(o.TemplateVersion, &st.Version) {
			available = o.CurrentAvailable
		}
	}
	return new(rollout.StablePods(model.Spec.Serving.Rollout, *model.Spec.Serving.Replicas, st, available))
}

// canaryEnded says whether the canary Deployment of a rollout that ended, by any path (passed,
// aborted, rolled back, RolloutFailed, the candidate archived or deleted, the rollout removed
// from the spec), may go: once the stable Deployment serves the Production version on every pod
// it should have, so that the canary's pods serve until the stable ones can take their
// traffic; at once when no version is Production, since nothing will take it.
func canaryEnded(model *mlv1.RegisteredModel, production *int64, stable *serving.Observed) bool {
	if production == nil {
		return true
	}
	if stable == nil || !stable.Serving || !sameVersion(stable.TemplateVersion, production) {
		return false
	}
	return model.Spec.Serving == nil || model.Spec.Serving.Replicas == nil || stable.Replicas >= *model.Spec.Serving.Replicas
}

// canaryShare says what the candidate gets, for its Serving condition.
func canaryShare(spec *mlv1.Rollout, st *mlv1.RolloutStatus) string {
	switch {
	case st.Shadowing():
		return "copies of the requests"
	case spec.GatewayAPI() != nil:
		return fmt.Sprintf("%d%% of the requests", st.Weight)
	}
	return fmt.Sprintf("%d%% of the prediction pods", st.Weight)
}
