package controller

import (
	"context"
	"errors"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/rollout"
	"github.com/podium-dev/podium/internal/serving"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;create;patch;delete

// gatewayAPIMissingMessage is the Stalled condition's message when the cluster lacks the HTTPRoute kind.
const gatewayAPIMissingMessage = "spec.serving.rollout.traffic.gatewayAPI needs the Gateway API's HTTPRoute " +
	"(gateway.networking.k8s.io/v1), which this cluster does not serve: install the Gateway API CRDs (v1.x) or " +
	"remove spec.serving.rollout.traffic; no canary starts until then"

// routeSettle is how soon a model whose canary waits for the route just applied is reconciled
// again. Not shorter: a route that something else keeps changing back is applied at most this often.
const routeSettle = time.Second

// routeState is the model's HTTPRoute as the API server holds it. Routes are read around the
// cache, and only for a model with spec.serving.rollout.traffic.gatewayAPI, so that the manager
// neither needs the Gateway API CRDs to start nor caches every route of the cluster.
type routeState struct {
	live *gatewayv1.HTTPRoute // nil when there is none
	// missing says the cluster does not serve the HTTPRoute kind.
	missing bool
}

// observeRoute reads the model's HTTPRoute from the API server when its rollout routes traffic
// with the Gateway API.
func (r *RegisteredModelReconciler) observeRoute(ctx context.Context, model *mlv1.RegisteredModel) (routeState, error) {
	if rolloutSpec(model).GatewayAPI() == nil {
		return routeState{}, nil
	}
	live, err := r.readRoute(ctx, model)
	if gatewayAPIMissing(err) {
		return routeState{missing: true}, nil
	}
	return routeState{live: live}, err
}

// readRoute reads the model's HTTPRoute from the API server; nil when there is none.
func (r *RegisteredModelReconciler) readRoute(ctx context.Context, model *mlv1.RegisteredModel) (*gatewayv1.HTTPRoute, error) {
	route := &gatewayv1.HTTPRoute{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: serving.RouteName(model.Name)}, route)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// A typed read drops the kind, which the rendering names.
	route.SetGroupVersionKind(serving.RouteKind)
	return route, nil
}

// gatewayAPIMissing says whether err means that the cluster does not serve the HTTPRoute kind.
func gatewayAPIMissing(err error) bool {
	var discovery *apierrors.StatusError
	return meta.IsNoMatchError(err) ||
		(errors.As(err, &discovery) && apierrors.IsNotFound(err) && discovery.ErrStatus.Details != nil &&
			discovery.ErrStatus.Details.Name == "" && discovery.ErrStatus.Details.Kind == "httproutes")
}

// canaryServes says whether the canary Deployment runs version on all its pods' template, with at
// least one available pod and none of an older template left: the canary Service then sends
// requests only to the candidate.
func canaryServes(canary *appsv1.Deployment, version int64) bool {
	if canary == nil || canary.Status.ObservedGeneration < canary.Generation {
		return false
	}
	o := serving.Observe(canary)
	return sameVersion(o.TemplateVersion, &version) && canary.Status.AvailableReplicas > 0 &&
		canary.Status.Replicas == canary.Status.UpdatedReplicas
}

// trafficSplit is how the model's HTTPRoute shares the requests while st runs: the current
// step's weight, or the shadow's mirror, once the canary pods serve the candidate; everything to
// the stable track otherwise, so that no request reaches a canary Service without the
// candidate's pods behind it.
func trafficSplit(model *mlv1.RegisteredModel, st *mlv1.RolloutStatus, canary *appsv1.Deployment) serving.Split {
	if !st.Canary() || !canaryStrategy(model) || !canaryServes(canary, st.Version) {
		return serving.Split{}
	}
	spec := rolloutSpec(model)
	return serving.Split{Backend: true, Canary: rollout.StepWeight(spec, st), Mirror: rollout.MirrorPercent(spec, st)}
}

// renderRoute renders and stamps the model's HTTPRoute for split.
func renderRoute(model *mlv1.RegisteredModel, split serving.Split) (*gatewayv1.HTTPRoute, error) {
	route, err := serving.Route(model, split)
	if err != nil {
		return nil, err
	}
	return route, serving.Stamp(route)
}

// routed says whether the live route carries the split that st asks for: a step's clock starts
// only once its weight is on the route.
func routed(model *mlv1.RegisteredModel, st *mlv1.RolloutStatus, canary *appsv1.Deployment, rs routeState) bool {
	if rolloutSpec(model).GatewayAPI() == nil {
		return true
	}
	route, err := renderRoute(model, trafficSplit(model, st, canary))
	return err == nil && rs.live != nil && serving.Contains(rs.live, route)
}

// planTraffic renders, for a model whose rollout has traffic.gatewayAPI, the HTTPRoute and the
// Services behind it: the stable Service always, the canary Service while a canary runs. It
// sets the GatewayAPIMissing problem when the cluster lacks the HTTPRoute kind, and lists the
// canary Service for removal when the canary ended; for a model without traffic.gatewayAPI, it
// lists what an earlier one left for removal (see planTrafficRemoval).
func (r *RegisteredModelReconciler) planTraffic(ctx context.Context, model *mlv1.RegisteredModel, st *mlv1.RolloutStatus,
	canary *appsv1.Deployment, rs routeState, check bool, s *servingState) error {
	if rolloutSpec(model).GatewayAPI() == nil {
		return r.planTrafficRemoval(ctx, model, s)
	}
	if rs.missing {
		s.problem, s.message, s.retry = mlv1.ReasonGatewayAPIMissing, gatewayAPIMissingMessage, r.missingRetry()
		return nil
	}
	route, err := renderRoute(model, trafficSplit(model, st, canary))
	if errors.Is(err, serving.ErrInvalid) {
		s.problem, s.message = mlv1.ReasonInvalidServing, err.Error()
		return nil
	}
	if err != nil {
		return err
	}
	stable := serving.StableService(model)
	if err := serving.Stamp(stable); err != nil {
		return err
	}
	pairs := []pair{{desired: route}, {desired: stable}}
	if rs.live != nil {
		pairs[0].live = rs.live
	}
	if pairs[1].live, err = r.cached(ctx, stable, &corev1.Service{}); err != nil {
		return err
	}
	liveCanary, err := r.cached(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: model.Namespace,
		Name: serving.CanaryServiceName(model.Name)}}, &corev1.Service{})
	if err != nil {
		return err
	}
	if st.Canary() && canaryStrategy(model) {
		canarySvc := serving.CanaryService(model)
		if err := serving.Stamp(canarySvc); err != nil {
			return err
		}
		pairs = append(pairs, pair{desired: canarySvc, live: liveCanary})
	} else if liveCanary != nil && liveCanary.GetDeletionTimestamp().IsZero() && metav1.IsControlledBy(liveCanary, model) {
		s.remove = append(s.remove, liveCanary) // applied after the route that no longer names it
	}
	var pending []pair
	for _, p := range pairs {
		if p.live == nil || !serving.Contains(p.live, p.desired) {
			pending = append(pending, p)
		}
	}
	switch {
	case len(pending) > 0 && !check:
		s.unchecked = true
	case len(pending) > 0:
		if err := r.checkApply(ctx, model, nil, s, pending...); err != nil || s.problem != "" {
			return err
		}
	}
	if len(pending) > 0 && st.Canary() {
		// Routes are not watched: the reconcile that applies one comes back to see it, so that
		// the step whose split it carries begins.
		s.retry = soonest(s.retry, routeSettle)
	}
	// The Services go first: the route names them.
	for _, p := range pairs[1:] {
		s.traffic = append(s.traffic, applyItem{obj: p.desired, applied: p.live != nil && serving.Contains(p.live, p.desired)})
	}
	s.traffic = append(s.traffic, applyItem{obj: route, applied: pairs[0].live != nil && serving.Contains(pairs[0].live, route)})
	return nil
}

// planTrafficRemoval lists for removal the HTTPRoute and its Services that a model's earlier
// traffic.gatewayAPI left: the route first, then the Services it named. Podium renders the
// stable Service whenever it renders the route, and applies it first, so the route is looked
// for on the API server only while the cache holds a stable Service of the model.
func (r *RegisteredModelReconciler) planTrafficRemoval(ctx context.Context, model *mlv1.RegisteredModel, s *servingState) error {
	var services []client.Object
	for _, name := range []string{serving.StableServiceName(model.Name), serving.CanaryServiceName(model.Name)} {
		svc := &corev1.Service{}
		err := r.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: name}, svc)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		case metav1.IsControlledBy(svc, model) && svc.DeletionTimestamp.IsZero():
			services = append(services, svc)
		}
	}
	if len(services) == 0 {
		return nil
	}
	route, err := r.readRoute(ctx, model)
	switch {
	case gatewayAPIMissing(err):
	case err != nil:
		return err
	case route != nil && metav1.IsControlledBy(route, model) && route.DeletionTimestamp.IsZero():
		s.remove = append(s.remove, route)
	}
	s.remove = append(s.remove, services...)
	return nil
}

// applyItem is a rendering to apply, unless the live object already holds it.
type applyItem struct {
	obj     client.Object
	applied bool
}
