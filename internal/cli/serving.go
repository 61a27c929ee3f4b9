package cli

// Serving is not in the API yet: a later change adds spec.serving and status.serving to
// RegisteredModel. The plugin reads them from the unstructured object, so that it shows and waits
// for serving as soon as the operator reports it, and works the same before. Once the fields are
// in api/v1alpha1, read them from the typed RegisteredModel instead and delete this file.

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// serving is what a RegisteredModel says about serving its Production version.
type serving struct {
	// Requested is true when the model's spec has a serving field.
	Requested bool `json:"requested"`
	// The rest is status.serving.
	DeploymentName string `json:"deploymentName,omitempty"`
	ServiceName    string `json:"serviceName,omitempty"`
	Version        *int64 `json:"version,omitempty"`
	ReadyReplicas  int64  `json:"readyReplicas,omitempty"`
}

// serves says whether the model needs no serving, or serves version n.
func (s serving) serves(n int64) bool {
	return !s.Requested || (s.Version != nil && *s.Version == n)
}

// serving reads the serving fields of the RegisteredModel called model.
func (c *cluster) serving(ctx context.Context, model string) (serving, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(mlv1.GroupVersion.WithKind("RegisteredModel"))
	if err := c.client.Get(ctx, c.key(model), u); err != nil {
		return serving{}, explain(err)
	}
	_, requested, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "serving")
	s := serving{Requested: requested}
	s.DeploymentName, _, _ = unstructured.NestedString(u.Object, "status", "serving", "deploymentName")
	s.ServiceName, _, _ = unstructured.NestedString(u.Object, "status", "serving", "serviceName")
	s.ReadyReplicas, _, _ = unstructured.NestedInt64(u.Object, "status", "serving", "readyReplicas")
	if v, found, _ := unstructured.NestedInt64(u.Object, "status", "serving", "version"); found {
		s.Version = &v
	}
	return s, nil
}
