// Package controller holds Podium's reconcilers. The RegisteredModel reconciler is the single
// writer of every promotion decision: it writes the RegisteredModel's status and, from it, the
// status of each of the model's ModelVersions. It never writes a spec.
package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/metrics"
	"github.com/podium-dev/podium/internal/promotion"
	"github.com/podium-dev/podium/internal/serving"
)

// VersionModelIndex indexes ModelVersions by namespace and spec.registeredModel, so a model's
// versions are read from the cache without listing the namespace.
const VersionModelIndex = "spec.registeredModel"

// FieldOwner is the manager name Podium writes with.
const FieldOwner = "podium"

// RegisteredModelReconciler decides which version of a model is Production and records the
// decision on the model and its versions.
type RegisteredModelReconciler struct {
	client.Client
	// APIReader reads around the cache: Secret and claim metadata, which are never cached.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// FetcherImage is the image of the prediction pods' init container that fetches bundles: the
	// operator's own image, so that fetcher and operator never drift apart.
	FetcherImage string
	// MissingRetry is how often to look again for a missing storage Secret or claim;
	// DefaultMissingRetry when zero.
	MissingRetry time.Duration
	// Now returns the current time; tests may fix it.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=ml.podium.dev,resources=registeredmodels;modelversions,verbs=get;list;watch
// +kubebuilder:rbac:groups=ml.podium.dev,resources=registeredmodels/status;modelversions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Reconcile observes a model and its versions, decides with the promotion rules, and records the
// decision: the model's status first (the single source of truth, written with optimistic
// locking so that no decision is made twice on stale data), then the versions that leave
// Production, then the rest, then the version that enters Production. So no observer ever sees
// two Production versions of one model.
func (r *RegisteredModelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)

	versions, err := r.versionsOf(ctx, req.Namespace, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	model := &mlv1.RegisteredModel{}
	if err := r.Get(ctx, req.NamespacedName, model); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetModel(req.Namespace, req.Name)
			return ctrl.Result{}, r.reconcileOrphans(ctx, req.Name, versions)
		}
		return ctrl.Result{}, err
	}
	if !model.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	live, err := r.observeDeployment(ctx, model)
	if err != nil {
		return ctrl.Result{}, err
	}
	in := observe(model, versions)
	in.FailedRollout = failedRollout(model, live)
	decision := promotion.Decide(in)
	plan, err := r.planServing(ctx, model, versions, live, decision)
	if err != nil {
		return ctrl.Result{}, err
	}
	previous := model.Status.ProductionVersion
	if err := r.recordModel(ctx, model, versions, decision, plan, r.now()); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.recordVersions(ctx, model, versions, previous, decision, plan); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.applyServing(ctx, plan); err != nil {
		return ctrl.Result{}, err
	}
	for _, t := range decision.Transitions {
		log.Info("Stage changed", "registeredModel", klog.KObj(model), "version", t.Version,
			"from", t.From, "to", t.To, "reason", t.Reason)
		metrics.RecordTransition(model.Namespace, model.Name, string(t.From), string(t.To), string(t.Reason))
		if t.Reason == mlv1.ReasonRolloutFailed {
			metrics.RecordAutomaticRollback(model.Namespace, model.Name)
		}
	}
	metrics.SetProductionVersion(model.Namespace, model.Name, decision.Production)
	return ctrl.Result{RequeueAfter: plan.retry}, nil
}

// versionsOf reads a model's versions from the cache, ordered by version number then name.
func (r *RegisteredModelReconciler) versionsOf(ctx context.Context, namespace, model string) ([]mlv1.ModelVersion, error) {
	var list mlv1.ModelVersionList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{VersionModelIndex: model}); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b mlv1.ModelVersion) int {
		return cmp.Or(cmp.Compare(a.Spec.Version, b.Spec.Version), cmp.Compare(a.Name, b.Name))
	})
	return list.Items, nil
}

// observe turns the cluster's objects into the promotion rules' input.
func observe(model *mlv1.RegisteredModel, versions []mlv1.ModelVersion) promotion.Input {
	in := promotion.Input{
		Policy:     model.Spec.Promotion,
		Production: model.Status.ProductionVersion,
		Floor:      model.Status.AutomaticPromotionFloor,
		History:    model.Status.History,
	}
	for i := range versions {
		v := &versions[i]
		in.Versions = append(in.Versions, promotion.Version{
			Name:            v.Name,
			Number:          v.Spec.Version,
			Metrics:         v.Spec.Metrics,
			Request:         v.Spec.Stage,
			ObservedRequest: v.Status.ObservedStageRequest,
			Stage:           v.Status.Stage,
			Generation:      v.Generation,
		})
	}
	return in
}

// recordModel writes the model's status when the decision changes it, and emits an Event on the
// model for each transition. A conflict means the decision was made on a stale model: the
// error requeues the model and nothing else is written.
func (r *RegisteredModelReconciler) recordModel(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, d promotion.Decision, plan servingState, now time.Time) error {
	want := modelStatus(model, len(versions), d, plan, now)
	if equality.Semantic.DeepEqual(model.Status, want) {
		return nil
	}
	patch := client.MergeFromWithOptions(model.DeepCopy(), client.MergeFromWithOptimisticLock{})
	rolledOut := rolloutEnded(model.Status.Serving, want.Serving)
	model.Status = want
	if err := r.Status().Patch(ctx, model, patch, client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("recording the decision on RegisteredModel %s: %w", klog.KObj(model), err)
	}
	if rolledOut != nil {
		metrics.ObserveRolloutDuration(model.Namespace, model.Name, now.Sub(rolledOut.Time))
	}
	for _, t := range d.Transitions {
		r.Recorder.Eventf(model, nil, eventType(t), string(t.Reason), "Promote",
			"Version %d (%s): %s -> %s: %s", t.Version, t.Name, stageName(t.From), t.To, t.Message)
	}
	return nil
}

// recordVersions writes each version's status where it differs from the decision, in the order
// that never shows two Production versions: the version that was Production before this decision
// first, then the others, then the one that is Production now. The version that leaves Production
// is written even when the cache says it is already demoted, because the cache may not have seen
// our own promotion of it yet; the model's status, which the optimistic lock proved fresh, says
// which one it is.
func (r *RegisteredModelReconciler) recordVersions(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, previous *int64, d promotion.Decision, plan servingState) error {
	changed := map[string]promotion.Transition{}
	for _, t := range d.Transitions {
		changed[t.Name] = t
	}
	var leaving, others, entering []*mlv1.ModelVersion
	for i := range versions {
		v := &versions[i]
		switch stage := d.Versions[v.Name].Stage; {
		case stage == mlv1.StageProduction:
			entering = append(entering, v)
		case previous != nil && v.Spec.Version == *previous:
			leaving = append(leaving, v)
		default:
			others = append(others, v)
		}
	}
	for _, group := range [][]*mlv1.ModelVersion{leaving, others, entering} {
		for _, v := range group {
			want := versionStatus(model, v, d.Versions[v.Name], plan)
			force := previous != nil && v.Spec.Version == *previous && d.Versions[v.Name].Stage != mlv1.StageProduction
			if !force && equality.Semantic.DeepEqual(v.Status, want) {
				continue
			}
			base := v.DeepCopy()
			if force {
				// A merge patch carries only what differs from its base: a base that says
				// Production makes it carry the new stage whatever the cache says.
				base.Status.Stage = mlv1.StageProduction
			}
			patch := client.MergeFrom(base)
			v.Status = want
			if err := r.Status().Patch(ctx, v, patch, client.FieldOwner(FieldOwner)); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return fmt.Errorf("recording the stage of ModelVersion %s: %w", klog.KObj(v), err)
			}
			if !equality.Semantic.DeepEqual(base.Status.Gates, want.Gates) {
				metrics.RecordGateEvaluation(model.Namespace, model.Name, d.Versions[v.Name].Gates.Passed)
			}
			if t, ok := changed[v.Name]; ok {
				r.Recorder.Eventf(v, model, eventType(t), string(t.Reason), "Promote",
					"%s -> %s: %s", stageName(t.From), t.To, t.Message)
			}
		}
	}
	return nil
}

// reconcileOrphans marks the versions of a model that does not exist: they wait, and are
// decided as soon as the model appears.
func (r *RegisteredModelReconciler) reconcileOrphans(ctx context.Context, model string, versions []mlv1.ModelVersion) error {
	for i := range versions {
		v := &versions[i]
		want := orphanStatus(v, model)
		if equality.Semantic.DeepEqual(v.Status, want) {
			continue
		}
		patch := client.MergeFrom(v.DeepCopy())
		v.Status = want
		if err := r.Status().Patch(ctx, v, patch, client.FieldOwner(FieldOwner)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("recording that the model of ModelVersion %s is missing: %w", klog.KObj(v), err)
		}
	}
	return nil
}

func (r *RegisteredModelReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func eventType(t promotion.Transition) string {
	if t.Reason == mlv1.ReasonGatesFailed {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

func stageName(s mlv1.Stage) string {
	if s == "" {
		return "(new)"
	}
	return string(s)
}

// CacheOptions limits the manager's cache of Deployments and Services to those Podium renders,
// so that it never holds every Deployment of the cluster, and drops managedFields from what it
// caches: the reconciler never reads them, and they are a large part of every object.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{serving.LabelManagedBy: "podium"})
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: managed},
			&corev1.Service{}:    {Label: managed},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// SetupWithManager registers the cache index and the watches: a model is reconciled when it, any
// of its versions, or its prediction Deployment or Service changes.
func (r *RegisteredModelReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &mlv1.ModelVersion{}, VersionModelIndex,
		func(o client.Object) []string { return []string{o.(*mlv1.ModelVersion).Spec.RegisteredModel} }); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&mlv1.RegisteredModel{}).
		Watches(&mlv1.ModelVersion{}, handler.EnqueueRequestsFromMapFunc(modelOfVersion)).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Named("registeredmodel").
		Complete(r)
}

func modelOfVersion(_ context.Context, o client.Object) []ctrl.Request {
	v := o.(*mlv1.ModelVersion)
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: v.Namespace, Name: v.Spec.RegisteredModel}}}
}
