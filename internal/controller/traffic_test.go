package controller

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestGatewayAPIMissing(t *testing.T) {
	httproutes := schema.GroupResource{Group: "gateway.networking.k8s.io", Resource: "httproutes"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"the REST mapper does not know the kind", &meta.NoKindMatchError{
			GroupKind: schema.GroupKind{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}, SearchedVersions: []string{"v1"}}, true},
		{"a wrapped mapping error", errors.Join(errors.New("reading"), &meta.NoResourceMatchError{
			PartialResource: httproutes.WithVersion("v1")}), true},
		{"the API server no longer serves the resource", apierrors.NewNotFound(httproutes, ""), true},
		{"the route does not exist", apierrors.NewNotFound(httproutes, "battle-winner-predictor-predictor"), false},
		{"a refusal", apierrors.NewForbidden(httproutes, "x", errors.New("no")), false},
		{"no error", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gatewayAPIMissing(tc.err); got != tc.want {
				t.Errorf("gatewayAPIMissing(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
