package cli

import (
	"context"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// serving is what a RegisteredModel says about serving its Production version.
type serving struct {
	// Requested is true when the model has spec.serving.
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
	m := &mlv1.RegisteredModel{}
	if err := c.client.Get(ctx, c.key(model), m); err != nil {
		return serving{}, explain(err)
	}
	s := serving{Requested: m.Spec.Serving != nil}
	if st := m.Status.Serving; st != nil {
		s.DeploymentName, s.ServiceName = st.DeploymentName, st.ServiceName
		s.Version, s.ReadyReplicas = st.Version, int64(st.ReadyReplicas)
	}
	return s, nil
}
