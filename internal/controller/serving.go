package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/bundle"
	"github.com/podium-dev/podium/internal/promotion"
	"github.com/podium-dev/podium/internal/serving"
)

// DefaultMissingRetry is how often a model whose storage Secret or claim is missing looks again:
// Podium does not watch Secrets, so that it never caches them.
const DefaultMissingRetry = 30 * time.Second

// servingState is what the serving phase observed and plans for one model.
type servingState struct {
	enabled  bool
	observed *serving.Observed // nil while there is no Deployment
	// deployment and service are the renderings to apply; nil when nothing is to be applied.
	// deploymentApplied says the live Deployment already holds the rendering.
	deployment        *appsv1.Deployment
	service           *corev1.Service
	deploymentApplied bool
	// staging is the staging Deployment and Service to apply, for the newest Staging version;
	// stagingLive is the staging Deployment as it is, nil when there is none.
	staging        *appsv1.Deployment
	stagingService *corev1.Service
	stagingLive    *appsv1.Deployment
	stagingApplied bool
	// problem is a reason from api/v1alpha1 when spec.serving cannot be served as it is.
	problem, message string
	retry            time.Duration
}

// servedVersion is the version every prediction pod serves, if any.
func (s servingState) servedVersion() *int64 {
	if s.observed == nil || !s.observed.Serving {
		return nil
	}
	return s.observed.TemplateVersion
}

// observeDeployment reads the model's prediction Deployment from the cache.
func (r *RegisteredModelReconciler) observeDeployment(ctx context.Context, model *mlv1.RegisteredModel) (*appsv1.Deployment, error) {
	if model.Spec.Serving == nil {
		return nil, nil
	}
	d := &appsv1.Deployment{}
	err := r.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: serving.DeploymentName(model.Name)}, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return d, err
}

// failedRollout is the Production version whose rollout the Deployment reports as failed.
func failedRollout(model *mlv1.RegisteredModel, d *appsv1.Deployment) *int64 {
	if d == nil || model.Status.ProductionVersion == nil {
		return nil
	}
	o := serving.Observe(d)
	if o.Failed && o.TemplateVersion != nil && *o.TemplateVersion == *model.Status.ProductionVersion {
		return o.TemplateVersion
	}
	return nil
}

// planServing renders what the model's prediction Deployment and Service must be after decision
// d, and checks what the rendering needs from the cluster: the storage Secret and a pvc:// claim.
// It reads only the metadata of a Secret, never its data.
func (r *RegisteredModelReconciler) planServing(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, live *appsv1.Deployment, d promotion.Decision) (servingState, error) {
	s := servingState{enabled: model.Spec.Serving != nil}
	if !s.enabled {
		return s, nil
	}
	if live != nil {
		o := serving.Observe(live)
		s.observed = &o
	}
	if err := r.planStaging(ctx, model, versions, d, &s); err != nil {
		return s, err
	}
	if d.Production == nil {
		return s, nil // nothing to serve: the Deployment is left as it is
	}
	var target *mlv1.ModelVersion
	for i := range versions {
		if versions[i].Spec.Version == *d.Production && d.Versions[versions[i].Name].Stage == mlv1.StageProduction {
			target = &versions[i]
		}
	}
	if target == nil {
		return s, nil
	}
	dep, err := serving.Deployment(serving.Target{Model: model, Version: target, FetcherImage: r.FetcherImage})
	if errors.Is(err, serving.ErrInvalid) {
		s.problem, s.message = mlv1.ReasonInvalidServing, err.Error()
		return s, nil
	}
	if err != nil {
		return s, err
	}
	// The storage Secret and the claim are checked before a rendering is applied; a Deployment
	// that already holds it costs no reads of the API server on every reconcile.
	s.deploymentApplied = live != nil && serving.Contains(live, dep)
	if !s.deploymentApplied {
		reason, msg, err := r.missingDependency(ctx, model, target)
		if err != nil {
			return s, err
		}
		if reason != "" {
			s.problem, s.message, s.retry = reason, msg, r.missingRetry()
			return s, nil
		}
	}
	s.deployment, s.service = dep, serving.Service(model)
	return s, nil
}

// missingDependency names what the rendering for target needs and the cluster lacks: the storage
// Secret, or the claim of a pvc:// bundle. It reads only their metadata, never a Secret's data.
func (r *RegisteredModelReconciler) missingDependency(ctx context.Context, model *mlv1.RegisteredModel,
	target *mlv1.ModelVersion) (reason, message string, err error) {
	if name := model.Spec.Serving.StorageSecretName; name != "" {
		if found, err := r.exists(ctx, "Secret", model.Namespace, name); err != nil || !found {
			return mlv1.ReasonStorageSecretNotFound, fmt.Sprintf(
				"spec.serving.storageSecretName names Secret %s, which does not exist in namespace %s; create it",
				name, model.Namespace), err
		}
	}
	if loc, perr := bundle.ParseURI(target.Spec.Artifact.URI); perr == nil && loc.Scheme == bundle.SchemePVC {
		if found, err := r.exists(ctx, "PersistentVolumeClaim", model.Namespace, loc.Bucket); err != nil || !found {
			return mlv1.ReasonClaimNotFound, fmt.Sprintf(
				"version %d's bundle is on claim %s, which does not exist in namespace %s; create it",
				target.Spec.Version, loc.Bucket, model.Namespace), err
		}
	}
	return "", "", nil
}

// planStaging renders the staging Deployment for the newest Staging version when
// spec.serving.staging asks for it, and reads the staging Deployment as it is.
func (r *RegisteredModelReconciler) planStaging(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, d promotion.Decision, s *servingState) error {
	live := &appsv1.Deployment{}
	err := r.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: serving.StagingName(model.Name)}, live)
	switch {
	case err == nil:
		s.stagingLive = live
	case !apierrors.IsNotFound(err):
		return err
	}
	if !model.Spec.Serving.Staging {
		return nil
	}
	var candidate *mlv1.ModelVersion
	for i := range versions { // ordered by version number: the last Staging one is the newest
		if vd := d.Versions[versions[i].Name]; vd.Stage == mlv1.StageStaging && !vd.Duplicate {
			candidate = &versions[i]
		}
	}
	if candidate == nil {
		return nil
	}
	dep, err := serving.Deployment(serving.Target{Model: model, Version: candidate, FetcherImage: r.FetcherImage, Staging: true})
	if err != nil {
		return nil // the Production plan reports what is wrong with spec.serving
	}
	s.staging, s.stagingService = dep, serving.StagingService(model)
	s.stagingApplied = s.stagingLive != nil && serving.Contains(s.stagingLive, dep)
	return nil
}

// exists says whether a core object exists, reading only its metadata and bypassing the cache.
func (r *RegisteredModelReconciler) exists(ctx context.Context, kind, namespace, name string) (bool, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// applyServing applies the planned Deployments and Services with server-side apply, as the field
// manager "podium", when the live objects do not already hold them, and removes a staging
// Deployment and Service that have no candidate left to serve.
func (r *RegisteredModelReconciler) applyServing(ctx context.Context, s servingState) error {
	if s.deployment != nil {
		if err := r.applyPair(ctx, s.deployment, s.service, s.deploymentApplied); err != nil {
			return err
		}
	}
	if s.staging != nil {
		return r.applyPair(ctx, s.staging, s.stagingService, s.stagingApplied)
	}
	if s.stagingLive != nil && !s.stagingLive.DeletionTimestamp.IsZero() {
		return nil
	}
	if s.stagingLive != nil && s.problem == "" {
		for _, obj := range []client.Object{s.stagingLive, &corev1.Service{ObjectMeta: metav1.ObjectMeta{
			Namespace: s.stagingLive.Namespace, Name: s.stagingLive.Name}}} {
			if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("removing the staging %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind,
					klog.KObj(obj), err)
			}
		}
	}
	return nil
}

// applyPair applies a Deployment, unless it is already applied, and its Service where the live
// one differs.
func (r *RegisteredModelReconciler) applyPair(ctx context.Context, dep *appsv1.Deployment, svc *corev1.Service,
	applied bool) error {
	if !applied {
		if err := r.apply(ctx, dep); err != nil {
			return err
		}
	}
	current := &corev1.Service{}
	err := r.Get(ctx, client.ObjectKeyFromObject(svc), current)
	if apierrors.IsNotFound(err) || (err == nil && !serving.Contains(current, svc)) {
		return r.apply(ctx, svc)
	}
	return err
}

func (r *RegisteredModelReconciler) apply(ctx context.Context, obj runtime.Object) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	content := &unstructured.Unstructured{Object: u}
	unstructured.RemoveNestedField(content.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(content.Object, "spec", "template", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(content.Object, "status")
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(content), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s: %w", content.GetKind(), klog.KRef(content.GetNamespace(), content.GetName()), err)
	}
	return nil
}

func (r *RegisteredModelReconciler) missingRetry() time.Duration {
	if r.MissingRetry > 0 {
		return r.MissingRetry
	}
	return DefaultMissingRetry
}
