// Package controller holds Podium's reconcilers. The RegisteredModel reconciler is the single
// writer of every promotion decision: it writes the RegisteredModel's status and, from it, the
// status of each of the model's ModelVersions. It never writes a spec.
package controller

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/metrics"
	"github.com/podium-dev/podium/internal/promotion"
	"github.com/podium-dev/podium/internal/rollout"
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
	// InsecureRegistries are the registries (HOST[:PORT]) the fetcher reaches over plain HTTP:
	// the fetcher of an oci:// bundle on one of them gets --insecure-registry.
	InsecureRegistries []string
	// MissingRetry is how often to look again for a missing storage Secret or claim;
	// DefaultMissingRetry when zero.
	MissingRetry time.Duration
	// Now returns the current time; tests may fix it.
	Now func() time.Time
	// PrometheusClient queries the online gates' Prometheus; the analysis package's default,
	// with its short timeout, when nil.
	PrometheusClient *http.Client
	// MaxQueries bounds the analysis queries in flight across every model; DefaultMaxQueries
	// when zero.
	MaxQueries int
	// StartMeasurement starts one model's measurement: run queries every metric and keeps the
	// results for the model's next reconcile. It is called with the measurer's lock held, so it
	// must not call run before it returns. Nil starts a goroutine. The explorer (test/explore)
	// queues run and calls it at a step of its scheduler, so that a seed always gives the same
	// schedule.
	StartMeasurement func(model types.NamespacedName, run func())
	// StageRecordsPerModel is how many StageRecords to keep for one model name;
	// mlv1.DefaultStageRecordsPerModel when zero.
	StageRecordsPerModel int

	// records holds, by model UID, the sequence of the newest StageRecord this manager wrote,
	// so that the reconcile after a decision does not write its records again; forgotten once
	// the model's deletion is recorded.
	records sync.Map

	pending pendingWrites
	// measurer takes the online gates' measurements off the workers (analysis); measured wakes
	// a model whose measurements are ready.
	measurerOnce sync.Once
	measurer     *measurer
	measured     chan event.GenericEvent
}

// analysis is the reconciler's measurer, made on first use.
func (r *RegisteredModelReconciler) analysis() *measurer {
	r.measurerOnce.Do(func() {
		r.measurer = newMeasurer(r.PrometheusClient, r.MaxQueries, r.measured)
		if r.StartMeasurement != nil {
			r.measurer.start = r.StartMeasurement
		}
	})
	return r.measurer
}

// +kubebuilder:rbac:groups=ml.podium.dev,resources=registeredmodels;modelversions,verbs=get;list;watch
// +kubebuilder:rbac:groups=ml.podium.dev,resources=registeredmodels/status;modelversions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ml.podium.dev,resources=registeredmodels/finalizers,verbs=update
// +kubebuilder:rbac:groups=ml.podium.dev,resources=modelversions,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Reconcile reads as its steps: observe (a model, its versions and what serves it, into one
// observation), decide (the promotion rules, the rollout, the renderings and the ordered writes,
// with the renderings checked by the API server's dry runs on a fresh observation), record (the
// statuses, records and finalizers, in their order), and apply (the serving objects). The cache
// only tells whether there is anything to record: a decision is recorded
// only from what the API server holds, read again for it, and every write is conditional on the
// resourceVersion that read returned. The writes come in the order that never shows two
// Production versions of one model (see record), whatever the cache, the errors, a crash between
// two writes, or a second manager do.
func (r *RegisteredModelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var measured measurements // taken once, by the first plan, from the cached model
	p, err := r.plan(ctx, r.Client, req, &measured)
	if err != nil {
		return ctrl.Result{}, err
	}
	if p.changes() || p.needsFinalizer() {
		if r.pending.cacheBehind(req.NamespacedName, p.objects()) {
			// The event of this manager's own write brings the model back, and the measurements
			// taken for it wait for that reconcile: they were not recorded.
			r.analysis().giveBack(req.NamespacedName, measured.values)
			return ctrl.Result{}, nil
		}
		// The cache is a past view, and the caches of models and versions lag independently:
		// decide again on the API server's view, and write only what that view needs. A plan
		// that changes only the rollout's progress decides nothing: it is written as it is, on
		// the model's resourceVersion, so an analysis interval costs no reads of the API server.
		if !p.rolloutProgressOnly() {
			if p, err = r.plan(ctx, r.APIReader, req, &measured); err != nil {
				return ctrl.Result{}, err
			}
		}
		if p.needsFinalizer() {
			// Before the model's first history entry, of the view the decision is written
			// from, so that no deletion of a model with history goes unrecorded (records.go);
			// the decision waits for the write's event.
			r.analysis().giveBack(req.NamespacedName, measured.values)
			return ctrl.Result{}, r.addFinalizer(ctx, p.model)
		}
		if err := r.record(ctx, p); err != nil {
			r.analysis().giveBack(req.NamespacedName, measured.values) // a write refused or failed: not recorded
			return ctrl.Result{}, err
		}
	}
	if p.model == nil {
		metrics.ForgetModel(req.Namespace, req.Name)
		r.analysis().forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if !p.model.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.recordDeletion(ctx, req.NamespacedName)
	}
	if err := r.applyServing(ctx, p.serving); err != nil {
		return ctrl.Result{}, err
	}
	metrics.SetProductionVersion(p.model.Namespace, p.model.Name, p.decision.Production)
	return ctrl.Result{RequeueAfter: soonest(p.serving.retry, rollout.Wake(rolloutSpec(p.model), p.status.Rollout, r.now()))}, nil
}

// measurements are the online gates' measurements of one reconcile. The first plan, made from
// the cache, takes those that are due on the model it read; a plan made again from the API
// server's view uses the same ones, and ignores them if that view's rollout is not due: a
// measurement counts at most once.
type measurements struct {
	taken  bool
	values []rollout.Measurement
}

// soonest is the shorter of two requeue delays, zero meaning none.
func soonest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// writeKind orders a reconcile's writes of version statuses.
type writeKind int

const (
	// leaving is a version that is Production where it was read and is not in the decision, or
	// the version the model recorded as Production when the decision moves Production away
	// from it (the fence). Leaving versions are written before the model.
	leaving writeKind = iota
	// other is any other version whose status changes; written after the model.
	other
	// entering is the version that becomes Production; written last.
	entering
)

// versionWrite is one version status to write.
type versionWrite struct {
	version *mlv1.ModelVersion
	status  mlv1.ModelVersionStatus
	kind    writeKind
}

// plan is what one reconcile decided for a model, from one view of the model and its versions,
// and the status writes that record it.
type plan struct {
	model    *mlv1.RegisteredModel // nil when the model does not exist
	versions []mlv1.ModelVersion
	decision promotion.Decision
	serving  servingState
	rollout  *mlv1.RolloutStatus        // the model's status.rollout after the decision
	status   mlv1.RegisteredModelStatus // the model's status after the decision
	writes   []versionWrite             // ordered: leaving, others, entering
	// finalizers are the versions whose FinalizerStageRecords the decision adds or removes,
	// written after every status (records.go).
	finalizers []finalizerWrite
	// records are the StageRecords of the history entries the model read holds and has not
	// recorded, written before the model; added are those of the entries the decision adds,
	// written after every status.
	records, added []mlv1.StageRecord
}

// objects are the model, if any, and its versions, as the plan read them.
func (p plan) objects() []client.Object {
	objs := make([]client.Object, 0, len(p.versions)+1)
	if p.model != nil {
		objs = append(objs, p.model)
	}
	for i := range p.versions {
		objs = append(objs, &p.versions[i])
	}
	return objs
}

// changes says whether recording the plan writes anything, or whether a rendering waits for the
// checks that only a plan from the API server's view makes.
func (p plan) changes() bool {
	return len(p.writes) > 0 || len(p.finalizers) > 0 || p.serving.unchecked ||
		(p.model != nil && !equality.Semantic.DeepEqual(p.model.Status, p.status))
}

// rolloutProgressOnly says whether the plan writes nothing but the model's rollout progress
// (status.rollout and the conditions that report it): no version, no decision, no rendering to
// check. Such a write needs no fresh read: it is conditional on the resourceVersion of the model
// it was planned from, and a plan that would change a decision is never one.
func (p plan) rolloutProgressOnly() bool {
	if p.model == nil || len(p.writes) > 0 || len(p.finalizers) > 0 || p.serving.unchecked || p.model.Status.Rollout == nil || p.status.Rollout == nil {
		return false
	}
	if p.model.Status.Rollout.VersionUID != p.status.Rollout.VersionUID || p.model.Status.Rollout.Phase != p.status.Rollout.Phase {
		return false // a rollout begins or ends: decided on the API server's view
	}
	before, after := p.model.Status.DeepCopy(), p.status.DeepCopy()
	before.Rollout, after.Rollout = nil, nil
	before.Conditions, after.Conditions = nil, nil
	return equality.Semantic.DeepEqual(before, after)
}

// observation is everything one plan is made from, read in one place (observe) before anything
// is decided: the model and its versions, through the cache or from the API server, the
// prediction Deployments and route from the cache, and the online gates' measurements.
type observation struct {
	req      ctrl.Request
	fresh    bool                  // read from the API server
	model    *mlv1.RegisteredModel // nil when the model does not exist
	versions []mlv1.ModelVersion
	// Only for a model that exists and is not being deleted:
	live, canary *appsv1.Deployment
	route        routeState
	measured     []rollout.Measurement
}

// plan observes a model through reader (the cache or the API server) and decides on what it
// observed.
func (r *RegisteredModelReconciler) plan(ctx context.Context, reader client.Reader, req ctrl.Request,
	measured *measurements) (plan, error) {
	o, err := r.observe(ctx, reader, req, measured)
	if err != nil {
		return plan{}, err
	}
	return r.decide(ctx, o)
}

// observe reads a model and its versions through reader, and what serves it. The model is read
// first: from the API server, the versions read after it include every version the model's
// status names, so a version missing from them was deleted. The measurements are taken once per
// reconcile, by its first observation.
func (r *RegisteredModelReconciler) observe(ctx context.Context, reader client.Reader, req ctrl.Request,
	measured *measurements) (observation, error) {
	o := observation{req: req, fresh: reader == r.APIReader}
	model := &mlv1.RegisteredModel{}
	modelErr := reader.Get(ctx, req.NamespacedName, model)
	if modelErr != nil && !apierrors.IsNotFound(modelErr) {
		return o, modelErr
	}
	var opts []client.ListOption
	if o.fresh && modelErr == nil {
		// Any state at least as new as the model read will do (docs/concepts.md): the API
		// server serves it from its watch cache without first asking etcd for its revision.
		opts = append(opts, &client.ListOptions{Raw: &metav1.ListOptions{
			ResourceVersion: model.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}})
	}
	var err error
	if o.versions, err = versionsOf(ctx, reader, req.Namespace, req.Name, opts...); err != nil {
		return o, err
	}
	if modelErr != nil {
		return o, nil
	}
	o.model = model
	if !model.DeletionTimestamp.IsZero() {
		return o, nil
	}
	if !measured.taken {
		measured.values, measured.taken = r.measure(model), true
	}
	o.measured = measured.values
	if o.live, err = r.observeDeployment(ctx, model); err != nil {
		return o, err
	}
	if o.canary, err = r.observeCanary(ctx, model); err != nil {
		return o, err
	}
	if o.route, err = r.observeRoute(ctx, model); err != nil {
		return o, err
	}
	return o, nil
}

// decide makes the plan for what o observed: the promotion rules' decision, the rollout's next
// state, the serving renderings (checked by dry runs when o is fresh), the statuses, the records
// and the ordered writes. It reads nothing of the cluster but through planServing's checks.
func (r *RegisteredModelReconciler) decide(ctx context.Context, o observation) (plan, error) {
	p := plan{versions: o.versions}
	model := o.model
	if model == nil {
		for i := range p.versions {
			v := &p.versions[i]
			if want := orphanStatus(v, o.req.Name, r.now()); !equality.Semantic.DeepEqual(v.Status, want) {
				p.writes = append(p.writes, versionWrite{version: v, status: want, kind: other})
			}
		}
		p.finalizers = versionFinalizers(p.versions, nil)
		return p, nil
	}
	p.model, p.status = model, model.Status
	if !model.DeletionTimestamp.IsZero() {
		return p, nil
	}
	in := promotionInput(model, p.versions)
	in.Failed = failedRollout(model, o.live)
	advanced, verdict := r.advanceRollout(model, o.live, o.canary, o.route, o.measured, &in)
	p.decision = promotion.Decide(in)
	p.rollout = r.settleRollout(model, advanced, verdict, p.decision, o.canary)
	var err error
	if p.serving, err = r.planServing(ctx, model, p.versions, o.live, o.canary, o.route, p.decision, p.rollout,
		o.fresh); err != nil {
		return p, err
	}
	now := r.now()
	p.status = modelStatus(model, len(p.versions), p.decision, p.serving, p.rollout, now)
	if pending := unrecorded(model.Status.History, model.Status.RecordedSequence); len(pending) > 0 {
		// Records this manager wrote after the model's last write move the cursor with the
		// model's next write, not with one of their own: a promotion costs no extra write. The
		// cursor lags so in a converged model, whose reconciles then build no record at all.
		written := r.recordWritten(model.UID, lastSequence(pending))
		if !written {
			p.records = stageRecords(model, p.versions, p.decision, model.Status.Rollout, pending)
		}
		if !written || !equality.Semantic.DeepEqual(model.Status, p.status) {
			p.status.RecordedSequence = lastSequence(pending)
		}
	}
	if len(p.decision.Transitions) > 0 {
		// The decision's entries as the status holds them, also those a short
		// spec.historyLimit trims at once.
		appended := promotion.AppendHistory(model.Status.History, p.decision.Transitions, now, math.MaxInt)
		p.added = stageRecords(model, p.versions, p.decision, p.status.Rollout,
			unrecorded(appended, lastSequence(model.Status.History)))
	}
	p.writes = versionWrites(model, p.versions, p.decision, p.serving, now)
	if productionMoves(model, p.decision) || slices.ContainsFunc(p.writes, func(w versionWrite) bool { return w.kind == entering }) {
		p.status.DecisionSequence++
	}
	for i := range p.writes {
		p.writes[i].status.DecisionSequence = p.status.DecisionSequence
	}
	p.finalizers = versionFinalizers(p.versions, &p.status)
	return p, nil
}

// productionMoves says whether decision d takes the Production stage away from the ModelVersion
// the model recorded as Production.
func productionMoves(model *mlv1.RegisteredModel, d promotion.Decision) bool {
	recorded := model.Status.ProductionVersion
	return recorded != nil && (!sameVersion(recorded, d.Production) || model.Status.ProductionVersionUID != d.ProductionUID)
}

// versionWrites lists the version statuses that decision d changes, in the order they are written.
func versionWrites(model *mlv1.RegisteredModel, versions []mlv1.ModelVersion, d promotion.Decision,
	plan servingState, now time.Time) []versionWrite {
	moves := productionMoves(model, d)
	writes := make([]versionWrite, 0, len(versions))
	for i := range versions {
		v := &versions[i]
		want := versionStatus(model, v, d.Versions[v.Name], plan, now)
		if !v.DeletionTimestamp.IsZero() {
			// Not a version to decide (see observe): it leaves Production, if it holds it.
			want = *v.Status.DeepCopy()
			if want.Stage == mlv1.StageProduction {
				want.Stage = mlv1.StageArchived
			}
		}
		want.DecisionSequence = v.Status.DecisionSequence
		w := versionWrite{version: v, status: want, kind: other}
		switch {
		case want.Stage == mlv1.StageProduction && v.Status.Stage != mlv1.StageProduction:
			w.kind = entering
		case want.Stage != mlv1.StageProduction && v.Status.Stage == mlv1.StageProduction:
			w.kind = leaving
		case moves && want.Stage != mlv1.StageProduction && v.Spec.Version == *model.Status.ProductionVersion:
			w.kind = leaving // the fence: written even when its stage already shows the decision
		case equality.Semantic.DeepEqual(v.Status, want):
			continue
		}
		writes = append(writes, w)
	}
	slices.SortStableFunc(writes, func(a, b versionWrite) int { return cmp.Compare(a.kind, b.kind) })
	return writes
}

// record writes a plan, each write conditional on the resourceVersion the plan was read at:
//
//  1. the leaving versions, demoted: any version Production on the API server that the decision
//     does not keep, and, when the decision moves Production away from the version the model
//     recorded, that version (the fence), whatever its status shows;
//  2. the model's status, with status.decisionSequence increased when a version enters or
//     leaves Production, so that the write always changes the model;
//  3. the other versions;
//  4. the version entering Production;
//  5. the finalizers: added to the version now Production, removed from any other (a version
//     being deleted loses it once the model has recorded that it left Production).
//
// Around them go the StageRecords (records.go): before, those of the history entries the model
// already held; after, those of the entries this decision adds.
//
// A writer whose view is older than another's fails at the first write that the other has made
// stale, and starts again from a fresh read: the argument is in docs/concepts.md.
func (r *RegisteredModelReconciler) record(ctx context.Context, p plan) error {
	if err := r.writeRecords(ctx, p.model, p.records); err != nil {
		if !meta.IsNoMatchError(err) {
			return err
		}
		// The StageRecord CRD is not installed (an upgrade that kept the old CRDs): decide and
		// serve without the records, which are written once it is.
		logf.FromContext(ctx).Error(err, "Cannot write StageRecords: install the StageRecord CRD (config/crd)",
			"registeredModel", klog.KObj(p.model))
		p.status.RecordedSequence = p.model.Status.RecordedSequence
		p.added = nil
	}
	for _, w := range p.writes {
		if w.kind != leaving {
			continue
		}
		if err := r.recordVersion(ctx, p, w); err != nil {
			return err
		}
	}
	if err := r.recordModel(ctx, p); err != nil {
		return err
	}
	for _, w := range p.writes {
		if w.kind == leaving {
			continue
		}
		if err := r.recordVersion(ctx, p, w); err != nil {
			return err
		}
	}
	if err := r.writeRecords(ctx, p.model, p.added); err != nil && !meta.IsNoMatchError(err) {
		return err
	}
	for _, f := range p.finalizers {
		if err := r.writeFinalizer(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// versionsOf reads a model's versions, ordered by version number then name.
func versionsOf(ctx context.Context, reader client.Reader, namespace, model string,
	opts ...client.ListOption) ([]mlv1.ModelVersion, error) {
	var list mlv1.ModelVersionList
	opts = append(opts, client.InNamespace(namespace), client.MatchingFields{VersionModelIndex: model})
	if err := reader.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b mlv1.ModelVersion) int {
		return cmp.Or(cmp.Compare(a.Spec.Version, b.Spec.Version), cmp.Compare(a.Name, b.Name))
	})
	return list.Items, nil
}

// promotionInput turns the cluster's objects into the promotion rules' input. A version being deleted is
// not one of them: the rules see it as gone, and, when it was Production, who marked it for
// deletion as the one who retired it.
func promotionInput(model *mlv1.RegisteredModel, versions []mlv1.ModelVersion) promotion.Input {
	in := promotion.Input{
		Policy:        model.Spec.Promotion,
		ModelUID:      string(model.UID),
		Production:    model.Status.ProductionVersion,
		ProductionUID: model.Status.ProductionVersionUID,
		Floor:         model.Status.AutomaticPromotionFloor,
		History:       model.Status.History,
		Handled:       model.Status.HandledRequests,
	}
	if l := model.Status.LatestVersion; l != nil {
		in.Latest = *l
	}
	for i := range versions {
		v := &versions[i]
		if !v.DeletionTimestamp.IsZero() {
			if string(v.UID) == in.ProductionUID {
				in.DeletedBy = deletedBy(v)
			}
			continue
		}
		in.Versions = append(in.Versions, promotion.Version{
			Name:              v.Name,
			UID:               string(v.UID),
			Number:            v.Spec.Version,
			Metrics:           v.Spec.Metrics,
			Request:           v.Spec.Stage,
			ObservedRequest:   v.Status.ObservedStageRequest,
			RequestID:         v.Spec.StageRequestID,
			ObservedRequestID: v.Status.ObservedStageRequestID,
			Stage:             v.Status.Stage,
			ModelUID:          v.Status.RegisteredModelUID,
			Generation:        v.Generation,
			RequestedBy:       v.Annotations[mlv1.AnnotationStageRequestedBy],
			SkipRollout:       v.Annotations[mlv1.AnnotationSkipRollout] == "true",
		})
	}
	return in
}

// recordModel writes the model's status when the plan changes it, conditional on the
// resourceVersion it was read at, and then reports the transitions: an Event on the model, a log
// line and the metrics for each. A conflict means the decision was made on a stale model: the
// error requeues the model and nothing else is written.
func (r *RegisteredModelReconciler) recordModel(ctx context.Context, p plan) error {
	model := p.model
	if model == nil || equality.Semantic.DeepEqual(model.Status, p.status) {
		return nil
	}
	patch := client.MergeFromWithOptions(model.DeepCopy(), client.MergeFromWithOptimisticLock{})
	rolledOut := rolloutEnded(model.Status.Serving, p.status.Serving)
	oldRollout := model.Status.Rollout
	model.Status = p.status
	before := model.ResourceVersion
	if err := r.Status().Patch(ctx, model, patch, client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("recording the decision on RegisteredModel %s: %w", klog.KObj(model), err)
	}
	r.pending.wrote(client.ObjectKeyFromObject(model), model, before)
	if rolledOut != nil {
		metrics.ObserveRolloutDuration(model.Namespace, model.Name, r.now().Sub(rolledOut.Time))
	}
	log := logf.FromContext(ctx)
	for _, t := range p.decision.Transitions {
		log.Info("Stage changed", "registeredModel", klog.KObj(model), "version", t.Version,
			"from", t.From, "to", t.To, "reason", t.Reason, "by", t.By)
		metrics.RecordTransition(model.Namespace, model.Name, string(t.From), string(t.To), string(t.Reason))
		if t.Reason == mlv1.ReasonRolloutFailed || (t.Reason == mlv1.ReasonAnalysisFailed && t.From == mlv1.StageProduction) {
			metrics.RecordAutomaticRollback(model.Namespace, model.Name)
		}
		r.Recorder.Eventf(model, nil, eventType(t), string(t.Reason), "Promote", "%s",
			eventNote(fmt.Sprintf("Version %d (%s): %s -> %s: %s%s", t.Version, t.Name, stageName(t.From), t.To, t.Message, byNote(t))))
	}
	if reason, note := rolloutEvent(oldRollout, p.status.Rollout); reason != "" {
		eventType := corev1.EventTypeNormal
		if p.status.Rollout.Phase == mlv1.RolloutAborted || (p.status.Rollout.Phase == mlv1.RolloutPaused && !pauseRequested(model)) {
			eventType = corev1.EventTypeWarning // a person's pause is what they asked for, not a problem
		}
		r.Recorder.Eventf(model, nil, eventType, reason, "Rollout", "%s", eventNote(note))
	}
	return nil
}

// rolloutEvent is the Event for a change of the model's rollout: a new rollout, a new phase, or
// a new step; no reason when nothing of that changed.
func rolloutEvent(old, updated *mlv1.RolloutStatus) (reason, note string) {
	switch {
	case updated == nil:
		return "", ""
	case old == nil || old.VersionUID != updated.VersionUID || old.StartTime == nil || updated.StartTime == nil ||
		!old.StartTime.Equal(updated.StartTime) || old.Phase != updated.Phase:
		return "Rollout" + string(updated.Phase), fmt.Sprintf("Version %d: %s", updated.Version, updated.Message)
	case !equality.Semantic.DeepEqual(old.Step, updated.Step):
		return "RolloutStep", fmt.Sprintf("Version %d: %s", updated.Version, updated.Message)
	}
	return "", ""
}

// recordVersion writes one version's status, conditional on the resourceVersion it was read at.
// A version deleted since is skipped.
func (r *RegisteredModelReconciler) recordVersion(ctx context.Context, p plan, w versionWrite) error {
	v := w.version
	base := v.DeepCopy()
	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	v.Status = w.status
	if err := r.Status().Patch(ctx, v, patch, client.FieldOwner(FieldOwner)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("recording the stage of ModelVersion %s: %w", klog.KObj(v), err)
	}
	r.pending.wrote(types.NamespacedName{Namespace: v.Namespace, Name: v.Spec.RegisteredModel}, v, base.ResourceVersion)
	if p.model == nil {
		return nil
	}
	if !equality.Semantic.DeepEqual(base.Status.Gates, w.status.Gates) {
		metrics.RecordGateEvaluation(p.model.Namespace, p.model.Name, p.decision.Versions[v.Name].Gates.Passed)
	}
	for _, t := range p.decision.Transitions {
		if t.Name == v.Name {
			r.Recorder.Eventf(v, p.model, eventType(t), string(t.Reason), "Promote", "%s",
				eventNote(fmt.Sprintf("%s -> %s: %s%s", stageName(t.From), t.To, t.Message, byNote(t))))
		}
	}
	return nil
}

// byNote is who caused a transition, for its Event's note; nothing when unknown. It comes after
// the message, which eventNote may cut, so a long message can hide it: the history keeps it whole.
func byNote(t promotion.Transition) string {
	if t.By == "" {
		return ""
	}
	return " (by " + t.By + ")"
}

// maxEventNote is the longest note the events API accepts, in bytes.
const maxEventNote = 1024

// eventNote shortens an Event's note to what the events API accepts, at a character boundary.
func eventNote(note string) string {
	if len(note) <= maxEventNote {
		return note
	}
	cut := maxEventNote - len("...")
	for !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + "..."
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
// and of Pods to the prediction pods, so that it never holds every Deployment or Pod of the
// cluster, and drops managedFields from what it caches: the reconciler never reads them, and they
// are a large part of every object.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{serving.LabelManagedBy: "podium"})
	predictorPods, err := labels.Parse(serving.LabelModel)
	if err != nil {
		panic(err) // a constant label key
	}
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: managed},
			&corev1.Service{}:    {Label: managed},
			&corev1.Pod{}:        {Label: predictorPods},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// SetupWithManager registers the cache index and the watches: a model is reconciled when it, any
// of its versions, its prediction Deployment or Service, or one of its prediction pods changes.
func (r *RegisteredModelReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &mlv1.ModelVersion{}, VersionModelIndex,
		func(o client.Object) []string { return []string{o.(*mlv1.ModelVersion).Spec.RegisteredModel} }); err != nil {
		return err
	}
	r.measured = make(chan event.GenericEvent, 1024)
	return ctrl.NewControllerManagedBy(mgr).
		For(&mlv1.RegisteredModel{}).
		Watches(&mlv1.ModelVersion{}, handler.EnqueueRequestsFromMapFunc(modelOfVersion)).
		WatchesRawSource(source.Channel(r.measured, &handler.EnqueueRequestForObject{})).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(modelOfPod)).
		Named("registeredmodel").
		Complete(r)
}

func modelOfPod(_ context.Context, o client.Object) []ctrl.Request {
	model := o.GetLabels()[serving.LabelModel]
	if model == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: model}}}
}

// modelOfVersion maps a version to its model. A spec.registeredModel that can name no object
// (only a version stored before the CRD refused such names can hold one) maps to nothing: the
// model's Get would fail on the name and be retried forever.
func modelOfVersion(_ context.Context, o client.Object) []ctrl.Request {
	v := o.(*mlv1.ModelVersion)
	if len(validation.IsDNS1123Label(v.Spec.RegisteredModel)) > 0 {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: v.Namespace, Name: v.Spec.RegisteredModel}}}
}
