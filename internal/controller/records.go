package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
)

// +kubebuilder:rbac:groups=ml.podium.dev,resources=stagerecords,verbs=create;list;delete
// +kubebuilder:rbac:groups=ml.podium.dev,resources=registeredmodels,verbs=patch

// A model's history lives in its status; each entry is also written as a StageRecord, which
// outlives the model. An entry is in the status before its record exists, and the model's
// status.recordedSequence says how far the records surely go: a reconcile writes the records of
// the entries after it before it writes the model, and, after its writes, the records of the
// entries it added. recordedSequence moves on with the model's next write; when this manager
// wrote those records itself, with the next write of a decision rather than with one of its own,
// so that a promotion costs no extra write. So a crash between any two writes leaves entries
// whose records a reconcile by the next manager writes (again, where they exist), and never a
// record of a transition that the status does not hold.

// pruneEvery is how many transitions of a model go between two checks of its records' count, at
// most: with a lower retention bound, as many as it keeps.
const pruneEvery = 100

// recordName is the name of the StageRecord of the model's history entry with sequence seq: the
// model's UID tells apart the models created under one name.
func recordName(model *mlv1.RegisteredModel, seq int64) string {
	uid := string(model.UID)
	return fmt.Sprintf("%s-%s-%d", model.Name, uid[:min(len(uid), 8)], seq)
}

// unrecorded are the entries of history with a sequence after the one given, oldest first.
func unrecorded(history []mlv1.HistoryEntry, after int64) []mlv1.HistoryEntry {
	var out []mlv1.HistoryEntry
	for _, e := range history {
		if e.Sequence > after {
			out = append(out, e)
		}
	}
	return out
}

// lastSequence is the sequence of the newest entry of history; zero when there is none.
func lastSequence(history []mlv1.HistoryEntry) int64 {
	if len(history) == 0 {
		return 0
	}
	return history[len(history)-1].Sequence
}

// stageRecords are the records of history entries es of model, with what the plan read of the
// versions, the gates of decision d, and the canary measurements of ro.
func stageRecords(model *mlv1.RegisteredModel, versions []mlv1.ModelVersion, d promotion.Decision,
	ro *mlv1.RolloutStatus, es []mlv1.HistoryEntry) []mlv1.StageRecord {
	out := make([]mlv1.StageRecord, 0, len(es))
	for _, e := range es {
		rec := mlv1.StageRecord{
			ObjectMeta: metav1.ObjectMeta{
				Name: recordName(model, e.Sequence), Namespace: model.Namespace,
				Labels: map[string]string{mlv1.LabelRecordModel: model.Name, mlv1.LabelRecordModelUID: string(model.UID)},
			},
			Model:      mlv1.RecordedModel{Name: model.Name, UID: string(model.UID)},
			Version:    mlv1.RecordedVersion{Number: e.Version, UID: e.VersionUID},
			Transition: e,
		}
		if v := recordedVersion(versions, e); v != nil {
			rec.Version.Name = v.Name
			rec.Version.UID = string(v.UID)
			rec.Version.RegisteredBy = v.Annotations[mlv1.AnnotationRegisteredBy]
			rec.Version.ArtifactURI = v.Spec.Artifact.URI
			rec.Version.Digest = v.Spec.Artifact.Digest
			rec.Gates = d.Versions[v.Name].Gates.Results
		}
		if ro != nil && e.VersionUID != "" && ro.VersionUID == e.VersionUID {
			rec.Measurements = ro.Metrics
		}
		out = append(out, rec)
	}
	return out
}

// recordedVersion is the ModelVersion of entry e among versions: the same object, or for an
// entry without a UID the one with its number; nil when it is gone.
func recordedVersion(versions []mlv1.ModelVersion, e mlv1.HistoryEntry) *mlv1.ModelVersion {
	for i := range versions {
		v := &versions[i]
		if (e.VersionUID != "" && string(v.UID) == e.VersionUID) || (e.VersionUID == "" && v.Spec.Version == e.Version) {
			return v
		}
	}
	return nil
}

// writeRecords creates the StageRecords, skipping those that exist (written before a crash, or
// by a reconcile whose status write came back as an error after it was made), and then, when a
// record's sequence is a multiple of pruneEvery (or of a lower retention bound), deletes the oldest records of the model's name
// past the retention bound.
func (r *RegisteredModelReconciler) writeRecords(ctx context.Context, model *mlv1.RegisteredModel, recs []mlv1.StageRecord) error {
	keep := cmp.Or(r.StageRecordsPerModel, mlv1.DefaultStageRecordsPerModel)
	every := int64(min(pruneEvery, keep))
	prune := false
	for i := range recs {
		rec := &recs[i]
		if r.recordWritten(model.UID, rec.Transition.Sequence) {
			continue
		}
		if err := r.Create(ctx, rec, client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("writing StageRecord %s of RegisteredModel %s: %w", rec.Name, klog.KObj(model), err)
		}
		r.records.Store(model.UID, rec.Transition.Sequence)
		prune = prune || rec.Transition.Sequence%every == 0
	}
	if !prune {
		return nil
	}
	return r.pruneRecords(ctx, model, keep)
}

// recordWritten says whether this manager wrote the record of the model's entry seq.
func (r *RegisteredModelReconciler) recordWritten(uid types.UID, seq int64) bool {
	written, ok := r.records.Load(uid)
	return ok && written.(int64) >= seq
}

// pruneRecords deletes the oldest StageRecords of the model's name, of this model and of those
// created under its name before, beyond the newest StageRecordsPerModel.
func (r *RegisteredModelReconciler) pruneRecords(ctx context.Context, model *mlv1.RegisteredModel, keep int) error {
	var list mlv1.StageRecordList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(model.Namespace),
		client.MatchingLabels{mlv1.LabelRecordModel: model.Name}); err != nil {
		return fmt.Errorf("listing the StageRecords of RegisteredModel %s: %w", klog.KObj(model), err)
	}
	if len(list.Items) <= keep {
		return nil
	}
	mlv1.SortStageRecords(list.Items)
	for i := range list.Items[:len(list.Items)-keep] {
		if err := r.Delete(ctx, &list.Items[i]); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting StageRecord %s past the retention bound: %w", list.Items[i].Name, err)
		}
	}
	logf.FromContext(ctx).Info("Deleted the oldest StageRecords", "registeredModel", klog.KObj(model),
		"deleted", len(list.Items)-keep, "kept", keep)
	return nil
}

// A model with history carries FinalizerStageRecords, so that its deletion is recorded too: the
// last StageRecord of a model says when it was deleted, what stopped serving, and who deleted it
// when the deletion was marked first (mlv1.AnnotationDeleteRequested, stamped by the governance
// policies). A model without history has nothing to record and no finalizer.

// needsFinalizer says whether the plan's model has history, or gets it from the decision, and
// lacks the finalizer that records its deletion.
func (p plan) needsFinalizer() bool {
	return p.model != nil && p.model.DeletionTimestamp.IsZero() && len(p.status.History) > 0 &&
		!controllerutil.ContainsFinalizer(p.model, mlv1.FinalizerStageRecords)
}

// addFinalizer adds FinalizerStageRecords to the model, conditional on the resourceVersion it was
// read at. The write's event brings the model back, and its decision is made then.
func (r *RegisteredModelReconciler) addFinalizer(ctx context.Context, model *mlv1.RegisteredModel) error {
	patch := client.MergeFromWithOptions(model.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(model, mlv1.FinalizerStageRecords)
	before := model.ResourceVersion
	if err := r.Patch(ctx, model, patch, client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("adding the finalizer %s to RegisteredModel %s: %w", mlv1.FinalizerStageRecords, klog.KObj(model), err)
	}
	r.pending.wrote(client.ObjectKeyFromObject(model), model, before)
	return nil
}

// recordDeletion writes, for a model being deleted, the StageRecords of its history entries not
// yet recorded and the record of its deletion, then removes the finalizer: from the API server's
// view, since the cache may not hold the model's last decision yet. Both records have names of
// their own, so a crash between any two of these writes repeats them harmlessly.
func (r *RegisteredModelReconciler) recordDeletion(ctx context.Context, key types.NamespacedName) error {
	model := &mlv1.RegisteredModel{}
	if err := r.APIReader.Get(ctx, key, model); err != nil {
		return client.IgnoreNotFound(err)
	}
	if model.DeletionTimestamp.IsZero() || !controllerutil.ContainsFinalizer(model, mlv1.FinalizerStageRecords) {
		return nil
	}
	versions, err := versionsOf(ctx, r.APIReader, key.Namespace, key.Name)
	if err != nil {
		return err
	}
	pending := unrecorded(model.Status.History, model.Status.RecordedSequence)
	recs := stageRecords(model, versions, promotion.Decision{}, model.Status.Rollout, pending)
	recs = append(recs, stageRecords(model, versions, promotion.Decision{}, nil, []mlv1.HistoryEntry{deletionEntry(model)})...)
	switch err := r.writeRecords(ctx, model, recs); {
	case err == nil:
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		// The namespace goes, and its StageRecords with it: there is nothing to write them in.
		logf.FromContext(ctx).Info("Not recording the deletion: the namespace is being deleted",
			"registeredModel", klog.KObj(model))
	case crdTerminating(err):
		// The StageRecord CRD is being deleted, and its records with it: no create is allowed.
		logf.FromContext(ctx).Info("Not recording the deletion: the StageRecord CRD is being deleted",
			"registeredModel", klog.KObj(model))
	case meta.IsNoMatchError(err):
		logf.FromContext(ctx).Error(err, "Cannot record the deletion: install the StageRecord CRD (config/crd)",
			"registeredModel", klog.KObj(model))
	default:
		return err
	}
	patch := client.MergeFromWithOptions(model.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(model, mlv1.FinalizerStageRecords)
	if err := r.Patch(ctx, model, patch, client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer %s of RegisteredModel %s: %w", mlv1.FinalizerStageRecords, klog.KObj(model), err)
	}
	r.records.Delete(model.UID)
	logf.FromContext(ctx).Info("Recorded the deletion", "registeredModel", klog.KObj(model), "by", deletedBy(model))
	return nil
}

// crdTerminating says whether err is the API server's refusal to create an object whose CRD is
// being deleted. It is a Forbidden error, told apart from a refusal by RBAC or admission only by
// its message.
func crdTerminating(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "while custom resource definition is terminating")
}

// deletedBy is who deleted a model or a version: whoever marked it for deletion, as the
// governance policies stamped it; "" when it was not marked.
func deletedBy(obj client.Object) string {
	if obj.GetAnnotations()[mlv1.AnnotationDeleteRequested] == "" {
		return ""
	}
	return obj.GetAnnotations()[mlv1.AnnotationDeleteRequestedBy]
}

// The ModelVersion that is Production carries FinalizerStageRecords too, so that its deletion is
// seen while it is still there to say who marked it: the history entry that retires it (reason
// Deleted) names that user, and the finalizer goes once the model's status holds that entry. It
// is added just after the version enters Production and removed once it leaves, so a version
// that does not serve is deleted at once, with or without the operator. A version deleted in the
// moment between its promotion and the finalizer, or without a mark, is recorded as deleted by
// nobody known.

// finalizerWrite adds FinalizerStageRecords to a version, or removes it.
type finalizerWrite struct {
	version *mlv1.ModelVersion
	add     bool
}

// versionFinalizers are the writes that leave FinalizerStageRecords on the one version that
// status names as Production and that is not being deleted, and on no other; with no status
// (the model is gone), on none.
func versionFinalizers(versions []mlv1.ModelVersion, status *mlv1.RegisteredModelStatus) []finalizerWrite {
	var out []finalizerWrite
	for i := range versions {
		v := &versions[i]
		want := status != nil && status.ProductionVersion != nil && status.ProductionVersionUID == string(v.UID) &&
			v.DeletionTimestamp.IsZero()
		if want != controllerutil.ContainsFinalizer(v, mlv1.FinalizerStageRecords) {
			out = append(out, finalizerWrite{version: v, add: want})
		}
	}
	return out
}

// writeFinalizer adds or removes a version's FinalizerStageRecords, conditional on the
// resourceVersion the plan read (or its own status write left).
func (r *RegisteredModelReconciler) writeFinalizer(ctx context.Context, f finalizerWrite) error {
	v := f.version
	patch := client.MergeFromWithOptions(v.DeepCopy(), client.MergeFromWithOptimisticLock{})
	what := "removing"
	if f.add {
		controllerutil.AddFinalizer(v, mlv1.FinalizerStageRecords)
		what = "adding"
	} else {
		controllerutil.RemoveFinalizer(v, mlv1.FinalizerStageRecords)
	}
	before := v.ResourceVersion
	if err := r.Patch(ctx, v, patch, client.FieldOwner(FieldOwner)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%s the finalizer %s of ModelVersion %s: %w", what, mlv1.FinalizerStageRecords, klog.KObj(v), err)
	}
	r.pending.wrote(types.NamespacedName{Namespace: v.Namespace, Name: v.Spec.RegisteredModel}, v, before)
	return nil
}

// deletionEntry is the transition a model's deletion makes: its Production version, if any,
// stops serving, at the time the API server accepted the deletion.
func deletionEntry(model *mlv1.RegisteredModel) mlv1.HistoryEntry {
	e := mlv1.HistoryEntry{
		Sequence: max(lastSequence(model.Status.History), model.Status.RecordedSequence) + 1,
		To:       mlv1.StageNone, Reason: mlv1.ReasonModelDeleted, Time: *model.DeletionTimestamp, By: deletedBy(model),
	}
	what := "it had no Production version"
	if prod := model.Status.ProductionVersion; prod != nil {
		e.Version, e.VersionUID, e.From = *prod, model.Status.ProductionVersionUID, mlv1.StageProduction
		what = fmt.Sprintf("version %d stopped serving", *prod)
	}
	e.Message = fmt.Sprintf("RegisteredModel %s was deleted; %s", model.Name, what)
	switch {
	case e.By != "":
	case model.Annotations[mlv1.AnnotationDeleteRequested] != "":
		e.Message += "; it was marked for deletion, but without the governance admission policies, which stamp who " +
			"marked it, so who deleted it is in the API server's audit log only"
	default:
		e.Message += "; it was not marked for deletion first (kubectl podium delete), so who deleted it is " +
			"in the API server's audit log only"
	}
	return e
}
