package serving

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// RouteKind is the Gateway API's HTTPRoute, the kind of the route Podium renders.
var RouteKind = schema.GroupVersionKind{Group: gatewayv1.GroupVersion.Group, Version: gatewayv1.GroupVersion.Version,
	Kind: "HTTPRoute"}

// RouteName is the name of the HTTPRoute Podium owns for a model with
// spec.serving.rollout.traffic.gatewayAPI: the prediction Service's name.
func RouteName(model string) string { return model + "-predictor" }

// StableServiceName is the name of the Service in front of the stable track's pods, the route's
// first backend.
func StableServiceName(model string) string { return model + "-predictor-stable" }

// CanaryServiceName is the name of the Service in front of the canary pods, the route's second
// backend (or mirror) while a canary runs.
func CanaryServiceName(model string) string { return CanaryName(model) }

// StableSelector selects the pods of the stable track: those of the prediction Deployment of a
// model with spec.serving.rollout.
func StableSelector(model string) map[string]string {
	return merged(Selector(model), map[string]string{LabelTrack: TrackStable})
}

// StableService renders the Service in front of the stable track's pods.
func StableService(model *mlv1.RegisteredModel) *corev1.Service {
	return service(model, StableServiceName(model.Name), StableSelector(model.Name))
}

// CanaryService renders the Service in front of the canary pods.
func CanaryService(model *mlv1.RegisteredModel) *corev1.Service {
	return service(model, CanaryServiceName(model.Name), CanarySelector(model.Name))
}

// Split is how the route shares the requests between the tracks, in percent: Canary of them go
// to the canary Service, the rest to the stable one, and Mirror of them are copied to the canary
// Service, their answers dropped. Without Backend the route has no canary backend at all.
type Split struct {
	Backend        bool
	Canary, Mirror int32
}

// Route renders the model's HTTPRoute: attached to the parents of
// spec.serving.rollout.traffic.gatewayAPI, with one rule that sends the requests to the stable
// Service and, as split says, to the canary Service, on the first port of the first container.
func Route(model *mlv1.RegisteredModel, split Split) (*gatewayv1.HTTPRoute, error) {
	gw := model.Spec.Serving.Rollout.GatewayAPI()
	containers := model.Spec.Serving.Template.Spec.Containers
	if len(containers) == 0 || len(containers[0].Ports) == 0 {
		return nil, fmt.Errorf("%w: spec.serving.rollout.traffic.gatewayAPI routes to the first port of the first "+
			"container, and spec.serving.template's first container has no ports; add one", ErrInvalid)
	}
	port := containers[0].Ports[0].ContainerPort
	backend := func(name string, weight int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: &port},
			Weight:                 &weight,
		}}
	}
	if !split.Backend {
		split = Split{}
	}
	rule := gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{
		backend(StableServiceName(model.Name), 100-split.Canary)}}
	if split.Canary > 0 {
		rule.BackendRefs = append(rule.BackendRefs, backend(CanaryServiceName(model.Name), split.Canary))
	}
	if split.Mirror > 0 {
		rule.Filters = []gatewayv1.HTTPRouteFilter{{
			Type: gatewayv1.HTTPRouteFilterRequestMirror,
			RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{
				BackendRef: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(CanaryServiceName(model.Name)), Port: &port},
				Percent:    &split.Mirror,
			},
		}}
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: objectMeta(model, RouteName(model.Name), Selector(model.Name)),
		Spec:       gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{rule}},
	}
	route.SetGroupVersionKind(RouteKind)
	for _, p := range gw.ParentRefs {
		ref := gatewayv1.ParentReference{Name: gatewayv1.ObjectName(p.Name)}
		if p.Namespace != "" {
			ref.Namespace = new(gatewayv1.Namespace(p.Namespace))
		}
		if p.SectionName != "" {
			ref.SectionName = new(gatewayv1.SectionName(p.SectionName))
		}
		if p.Port != nil {
			ref.Port = new(*p.Port)
		}
		route.Spec.ParentRefs = append(route.Spec.ParentRefs, ref)
	}
	for _, h := range gw.Hostnames {
		route.Spec.Hostnames = append(route.Spec.Hostnames, gatewayv1.Hostname(h))
	}
	return route, nil
}
