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
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/bundleuri"
	"github.com/podium-dev/podium/internal/conditions"
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
	served   *int64            // see servedVersion
	// deployment and service are the renderings to apply; nil when nothing is to be applied.
	// deploymentApplied and serviceApplied say the live objects already hold them.
	deployment        *appsv1.Deployment
	service           *corev1.Service
	deploymentApplied bool
	serviceApplied    bool
	// staging is the staging Deployment and Service to apply, for the newest Staging version;
	// stagingLive is the staging Deployment as it is, nil when there is none.
	staging               *appsv1.Deployment
	stagingService        *corev1.Service
	stagingLive           *appsv1.Deployment
	stagingApplied        bool
	stagingServiceApplied bool
	// canary is the canary Deployment to apply while a canary rollout runs; canaryLive is the
	// canary Deployment as it is, nil when there is none.
	canary        *appsv1.Deployment
	canaryLive    *appsv1.Deployment
	canaryApplied bool
	// canaryUID is the candidate the canary runs, canaryShare what it gets, in words.
	canaryUID   string
	canaryShare string
	// traffic are the renderings of spec.serving.rollout.traffic.gatewayAPI, in the order they
	// are applied: the stable Service, the canary Service while a canary runs, the HTTPRoute.
	traffic []applyItem
	// unchecked says a rendering is not applied yet and was not checked: the plan was made from
	// the cache, and the checks, which ask the API server, are left to the plan made from the
	// API server's view, the one a reconcile applies.
	unchecked bool
	// remove lists the objects of the model to delete: the whole prediction service when
	// spec.serving is removed, the staging pair when it has no candidate left.
	remove []client.Object
	// podProblem is what keeps the pods of the Production version's rollout from starting, as
	// their kubelets report it; empty when nothing does.
	podProblem string
	// problem is a reason from api/v1alpha1 when spec.serving cannot be served as it is.
	problem, message string
	retry            time.Duration
}

// servedVersion is the version every prediction pod serves, if any.
func (s servingState) servedVersion() *int64 { return s.served }

// rolledOut is the version every prediction pod serves once the Deployment also runs all the
// pods it asks for, if any: a model whose pods are still starting is not Ready yet.
func (s servingState) rolledOut() *int64 {
	if s.observed == nil || !s.observed.Serving {
		return nil
	}
	return s.observed.TemplateVersion
}

// lastServed is the version the model's status last reported serving: the Deployment's status
// cannot tell a change of its replicas from one of its template until it observes it, and only
// this says the template served before.
func lastServed(model *mlv1.RegisteredModel) *int64 {
	if model.Status.Serving == nil {
		return nil
	}
	return model.Status.Serving.Version
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
func failedRollout(model *mlv1.RegisteredModel, d *appsv1.Deployment) *promotion.Failure {
	if d == nil || model.Status.ProductionVersion == nil {
		return nil
	}
	o := serving.Observe(d)
	if o.Failed && o.TemplateVersion != nil && *o.TemplateVersion == *model.Status.ProductionVersion {
		return &promotion.Failure{Version: *o.TemplateVersion, Reason: mlv1.ReasonRolloutFailed,
			Message: "Its rollout missed the progress deadline; the previous Production version was restored"}
	}
	return nil
}

// planServing renders what the model's prediction Deployment and Service must be after decision
// d, and checks what applying the rendering needs: the storage Secret and a pvc:// claim, that no
// object Podium did not create holds the names, and that the API server accepts the rendering (a
// dry run). Those checks run only when the rendering is not applied yet, so a model that serves
// costs no reads of the API server, and only with check, so that one reconcile makes them once.
func (r *RegisteredModelReconciler) planServing(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, live, canary *appsv1.Deployment, rs routeState, d promotion.Decision,
	st *mlv1.RolloutStatus, check bool) (servingState, error) {
	s := servingState{enabled: model.Spec.Serving != nil}
	if !s.enabled {
		return s, r.planRemoval(ctx, model, &s)
	}
	if live != nil {
		o := serving.Observe(live)
		s.observed, s.served = &o, o.Serves(lastServed(model))
	}
	if err := r.planStaging(ctx, model, versions, d, check, &s); err != nil {
		return s, err
	}
	if err := r.planCanary(ctx, model, versions, st, d.Production, canary, check, &s); err != nil || s.problem != "" {
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
	dep, svc, err := render(serving.Target{Model: model, Version: target, FetcherImage: r.FetcherImage,
		Replicas: stableReplicas(model, st, canary), InsecureRegistries: r.InsecureRegistries}, serving.Service(model))
	if errors.Is(err, serving.ErrInvalid) {
		s.problem, s.message = mlv1.ReasonInvalidServing, err.Error()
		return s, nil
	}
	if err != nil {
		return s, err
	}
	s.deploymentApplied = live != nil && serving.Contains(live, dep)
	if !sameVersion(s.rolledOut(), &target.Spec.Version) {
		if s.podProblem, err = r.podProblem(ctx, model, target.Spec.Version); err != nil {
			return s, err
		}
	}
	liveSvc, err := r.cached(ctx, svc, &corev1.Service{})
	if err != nil {
		return s, err
	}
	s.serviceApplied = liveSvc != nil && serving.Contains(liveSvc, svc)
	if (!s.deploymentApplied || !s.serviceApplied) && !check {
		s.unchecked = true
	} else if !s.deploymentApplied || !s.serviceApplied {
		var liveDep client.Object // a nil *Deployment in an interface is not a nil interface
		if live != nil {
			liveDep = live
		}
		if err := r.checkApply(ctx, model, target, &s, pair{dep, liveDep}, pair{svc, liveSvc}); err != nil || s.problem != "" {
			return s, err
		}
	}
	s.deployment, s.service = dep, svc
	return s, r.planTraffic(ctx, model, st, canary, rs, check, &s)
}

// podProblem reads the model's prediction pods from the cache and names what keeps those of
// version from starting. This is how a missing storage Secret shows: Podium cannot read Secrets.
func (r *RegisteredModelReconciler) podProblem(ctx context.Context, model *mlv1.RegisteredModel, version int64) (string, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(model.Namespace), client.MatchingLabels(serving.Selector(model.Name))); err != nil {
		return "", err
	}
	return serving.PodProblem(pods.Items, version), nil
}

// pair is a rendering and the live object of its name in the cache, nil when there is none.
type pair struct {
	desired, live client.Object
}

// render renders a Deployment and stamps both it and its Service with their intent.
func render(t serving.Target, svc *corev1.Service) (*appsv1.Deployment, *corev1.Service, error) {
	dep, err := serving.Deployment(t)
	if err != nil {
		return nil, nil, err
	}
	if err := serving.Stamp(dep); err != nil {
		return nil, nil, err
	}
	return dep, svc, serving.Stamp(svc)
}

// checkApply sets a problem on s when the renderings cannot be applied: target's storage Secret or
// claim is missing (when target is set), an object Podium did not create holds one of the names, or the API server refuses
// a rendering in a dry run. It returns an error only for a failure worth retrying at once.
func (r *RegisteredModelReconciler) checkApply(ctx context.Context, model *mlv1.RegisteredModel,
	target *mlv1.ModelVersion, s *servingState, pairs ...pair) error {
	if target != nil {
		reason, msg, err := r.missingDependency(ctx, model, target)
		if err != nil || reason != "" {
			s.problem, s.message, s.retry = reason, msg, r.missingRetry()
			return err
		}
	}
	for _, p := range pairs {
		taken, err := r.nameTaken(ctx, model, p)
		if err != nil {
			return err
		}
		if taken {
			kind := p.desired.GetObjectKind().GroupVersionKind().Kind
			s.problem, s.retry = mlv1.ReasonServingNameTaken, r.missingRetry()
			s.message = fmt.Sprintf("%s %s exists and was not created by Podium for this model; Podium never takes over "+
				"an object it did not create: rename or delete it", kind, p.desired.GetName())
			return nil
		}
	}
	for _, p := range pairs {
		if err := r.apply(ctx, p.desired, client.DryRunAll); err != nil {
			if isTransient(err) {
				return err
			}
			s.problem, s.message = mlv1.ReasonServingRejected, promotion.Shorten(
				"The API server refuses the rendered "+err.Error()+"; fix spec.serving", conditions.MaxMessage)
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				s.retry = r.missingRetry() // a refusal for want of rights or quota may end without a change here
			}
			return nil
		}
	}
	return nil
}

// isTransient says whether an API error is worth retrying with backoff rather than reporting.
func isTransient(err error) bool {
	// An internal error is not among them: a rendering the API server cannot even turn into a
	// patch fails that way every time, and is reported (and retried) like any refusal.
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsConflict(err) ||
		apierrors.IsUnexpectedServerError(err) || !isStatusError(err)
}

func isStatusError(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status)
}

// nameTaken says whether the name of p's rendering is held by an object this model does not
// control. The cache holds only objects labelled as Podium's, so an object missing from it is
// looked up on the API server, by its metadata alone.
func (r *RegisteredModelReconciler) nameTaken(ctx context.Context, model *mlv1.RegisteredModel, p pair) (bool, error) {
	if p.live != nil {
		return !metav1.IsControlledBy(p.live, model), nil
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(p.desired.GetObjectKind().GroupVersionKind())
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(p.desired), obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !metav1.IsControlledBy(obj, model), nil
}

// cached reads from the cache the live object of a rendering's name into into; nil when there
// is none.
func (r *RegisteredModelReconciler) cached(ctx context.Context, desired client.Object, into client.Object) (client.Object, error) {
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), into)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return into, nil
}

// planRemoval lists the prediction objects of a model without spec.serving for deletion: its
// HTTPRoute, and the Deployments and Services it controls that the cache still holds.
func (r *RegisteredModelReconciler) planRemoval(ctx context.Context, model *mlv1.RegisteredModel, s *servingState) error {
	if err := r.planTrafficRemoval(ctx, model, s); err != nil {
		return err
	}
	for _, name := range []string{serving.DeploymentName(model.Name), serving.StagingName(model.Name), serving.CanaryName(model.Name)} {
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
			err := r.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: name}, obj)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return err
			case metav1.IsControlledBy(obj, model) && obj.GetDeletionTimestamp().IsZero():
				s.remove = append(s.remove, obj)
			}
		}
	}
	return nil
}

// missingDependency names what the rendering for target needs and the cluster lacks: the claim
// of a pvc:// bundle, read by its metadata. Podium holds no right to read Secrets: a missing
// storage Secret shows in the pods (see podProblem).
func (r *RegisteredModelReconciler) missingDependency(ctx context.Context, model *mlv1.RegisteredModel,
	target *mlv1.ModelVersion) (reason, message string, err error) {
	if loc, perr := bundleuri.Parse(target.Spec.Artifact.URI); perr == nil && loc.Scheme == bundleuri.SchemePVC {
		if found, err := r.exists(ctx, "PersistentVolumeClaim", model.Namespace, loc.Bucket); err != nil || !found {
			return mlv1.ReasonClaimNotFound, fmt.Sprintf(
				"version %d's bundle is on claim %s, which does not exist in namespace %s; create it",
				target.Spec.Version, loc.Bucket, model.Namespace), err
		}
	}
	return "", "", nil
}

// planStaging renders the staging Deployment for the newest Staging version when
// spec.serving.staging asks for it, reads the staging Deployment as it is, and lists the staging
// pair for removal when there is no candidate left.
func (r *RegisteredModelReconciler) planStaging(ctx context.Context, model *mlv1.RegisteredModel,
	versions []mlv1.ModelVersion, d promotion.Decision, check bool, s *servingState) error {
	live := &appsv1.Deployment{}
	err := r.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: serving.StagingName(model.Name)}, live)
	switch {
	case err == nil:
		s.stagingLive = live
	case !apierrors.IsNotFound(err):
		return err
	}
	var candidate *mlv1.ModelVersion
	for i := range versions { // ordered by version number: the last Staging one is the newest
		if vd := d.Versions[versions[i].Name]; model.Spec.Serving.Staging && vd.Stage == mlv1.StageStaging && !vd.Duplicate {
			candidate = &versions[i]
		}
	}
	if candidate == nil {
		if s.stagingLive != nil && s.stagingLive.DeletionTimestamp.IsZero() && metav1.IsControlledBy(s.stagingLive, model) {
			s.remove = append(s.remove, s.stagingLive, &corev1.Service{ObjectMeta: metav1.ObjectMeta{
				Namespace: model.Namespace, Name: serving.StagingName(model.Name)}})
		}
		return nil
	}
	dep, svc, err := render(serving.Target{Model: model, Version: candidate, FetcherImage: r.FetcherImage,
		InsecureRegistries: r.InsecureRegistries, Staging: true},
		serving.StagingService(model))
	if errors.Is(err, serving.ErrInvalid) {
		s.problem, s.message = mlv1.ReasonInvalidServing, "Staging: "+err.Error()
		return nil
	}
	if err != nil {
		return err
	}
	s.stagingApplied = s.stagingLive != nil && serving.Contains(s.stagingLive, dep)
	liveSvc, err := r.cached(ctx, svc, &corev1.Service{})
	if err != nil {
		return err
	}
	s.stagingServiceApplied = liveSvc != nil && serving.Contains(liveSvc, svc)
	if (!s.stagingApplied || !s.stagingServiceApplied) && !check {
		s.unchecked = true
	} else if !s.stagingApplied || !s.stagingServiceApplied {
		var stagingLive client.Object
		if s.stagingLive != nil {
			stagingLive = s.stagingLive
		}
		if err := r.checkApply(ctx, model, candidate, s, pair{dep, stagingLive}, pair{svc, liveSvc}); err != nil || s.problem != "" {
			return err
		}
	}
	s.staging, s.stagingService = dep, svc
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

// applyServing applies the planned Deployments, Services and HTTPRoute with server-side apply,
// as the field manager "podium", where the live objects do not already hold them, and then
// deletes what the plan removes: a canary Service goes only after the route that named it.
// A failed apply stops the ones after it.
func (r *RegisteredModelReconciler) applyServing(ctx context.Context, s servingState) error {
	if s.problem != "" {
		return nil
	}
	// The route goes before the canary Deployment: when a newer candidate takes the canary
	// pods, the route has stopped sending requests to them before they change version.
	items := []applyItem{{s.deployment, s.deploymentApplied}, {s.service, s.serviceApplied},
		{s.staging, s.stagingApplied}, {s.stagingService, s.stagingServiceApplied}}
	items = append(append(items, s.traffic...), applyItem{s.canary, s.canaryApplied})
	for _, a := range items {
		if isNil(a.obj) || a.applied {
			continue
		}
		if err := r.apply(ctx, a.obj); err != nil {
			return err
		}
	}
	for _, obj := range s.remove {
		if err := r.Delete(ctx, obj, client.Preconditions{UID: uidOf(obj)}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("removing %T %s: %w", obj, klog.KObj(obj), err)
		}
	}
	return nil
}

func isNil(obj client.Object) bool {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o == nil
	case *corev1.Service:
		return o == nil
	case *gatewayv1.HTTPRoute:
		return o == nil
	}
	return obj == nil
}

// uidOf is the UID precondition of a deletion: the object read, not another one created since.
func uidOf(obj client.Object) *types.UID {
	if uid := obj.GetUID(); uid != "" {
		return &uid
	}
	return nil
}

func (r *RegisteredModelReconciler) apply(ctx context.Context, obj runtime.Object, opts ...client.ApplyOption) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	content := &unstructured.Unstructured{Object: u}
	unstructured.RemoveNestedField(content.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(content.Object, "spec", "template", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(content.Object, "status")
	opts = append(opts, client.FieldOwner(FieldOwner), client.ForceOwnership)
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(content), opts...); err != nil {
		return fmt.Errorf("%s %s: %w", content.GetKind(), klog.KRef(content.GetNamespace(), content.GetName()), err)
	}
	return nil
}

func (r *RegisteredModelReconciler) missingRetry() time.Duration {
	if r.MissingRetry > 0 {
		return r.MissingRetry
	}
	return DefaultMissingRetry
}
