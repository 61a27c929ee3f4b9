// Package admission holds the manager's readiness check on the governance admission policies:
// right after an install, the API server may not apply a new MutatingAdmissionPolicy yet, or may
// refuse every ModelVersion it applies to (ServiceUnavailable, "Resource kind ... not found")
// until it has resolved the CRD's schema. The manager is not ready before both are done, so that
// `helm install --wait` returns only once the first `kubectl apply` of a ModelVersion succeeds
// and is stamped.
package admission

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// ProbeName names the ModelVersion that the probe creates in a dry run, and its model.
const ProbeName = "podium-admission-probe"

// probeTimeout bounds one dry run: a readiness probe that hangs is a failed one anyway.
const probeTimeout = 5 * time.Second

// GovernanceProbe is a readiness check that passes once a server-side dry-run create of a
// ModelVersion in Namespace is admitted and comes back with the ml.podium.dev/registered-by
// stamp of the governance policies. Nothing is stored. Once it has passed it passes for good:
// a probe that kept asking would make every readiness request a write request.
type GovernanceProbe struct {
	Client    client.Client
	Namespace string
	passed    atomic.Bool
}

// Check is the healthz.Checker.
func (p *GovernanceProbe) Check(req *http.Request) error {
	if p.passed.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(req.Context(), probeTimeout)
	defer cancel()
	if err := p.check(ctx); err != nil {
		return err
	}
	p.passed.Store(true)
	return nil
}

func (p *GovernanceProbe) check(ctx context.Context) error {
	v := &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Name: ProbeName, Namespace: p.Namespace},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: ProbeName,
			Version:         1,
			Artifact:        mlv1.Artifact{URI: "s3://" + ProbeName + "/"},
		},
	}
	if err := p.Client.Create(ctx, v, client.DryRunAll); err != nil {
		return fmt.Errorf("the API server does not admit a ModelVersion yet (a dry-run create in namespace %s): %w",
			p.Namespace, err)
	}
	if v.Annotations[mlv1.AnnotationRegisteredBy] == "" {
		return fmt.Errorf("the API server admits ModelVersions in namespace %s without the governance policies' "+
			"%s stamp: the MutatingAdmissionPolicy is not applied yet (or not installed: then leave out "+
			"--governance-probe-namespace)", p.Namespace, mlv1.AnnotationRegisteredBy)
	}
	return nil
}
