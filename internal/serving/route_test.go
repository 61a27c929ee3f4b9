package serving

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func withGatewayAPI(m *mlv1.RegisteredModel) {
	m.Spec.Serving.Rollout = &mlv1.Rollout{Strategy: mlv1.RolloutCanary, Traffic: &mlv1.Traffic{GatewayAPI: &mlv1.GatewayAPITraffic{
		ParentRefs: []mlv1.ParentReference{{Name: "public-gw", Namespace: "gateways", SectionName: "https", Port: new(int32(443))}},
		Hostnames:  []string{"battle.example.com"},
	}}}
}

// describe renders a route's one rule as "name=weight ... mirror=name@percent".
func describe(t *testing.T, m *mlv1.RegisteredModel, split Split) string {
	t.Helper()
	r, err := Route(m, split)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Spec.Rules) != 1 {
		t.Fatalf("%d rules, want one", len(r.Spec.Rules))
	}
	parts := make([]string, 0, len(r.Spec.Rules[0].BackendRefs)+len(r.Spec.Rules[0].Filters))
	for _, b := range r.Spec.Rules[0].BackendRefs {
		if *b.Port != 8080 {
			t.Errorf("backend %s on port %d, want the first container port 8080", b.Name, *b.Port)
		}
		parts = append(parts, fmt.Sprintf("%s=%d", b.Name, *b.Weight))
	}
	for _, f := range r.Spec.Rules[0].Filters {
		parts = append(parts, fmt.Sprintf("mirror=%s@%d", f.RequestMirror.BackendRef.Name, *f.RequestMirror.Percent))
	}
	return strings.Join(parts, " ")
}

func TestRouteSplits(t *testing.T) {
	m := servedModel(withGatewayAPI)
	for _, tc := range []struct {
		name  string
		split Split
		want  string
	}{
		{"outside a canary every request goes to the stable track", Split{},
			"battle-winner-predictor-stable=100"},
		{"a step gives the canary its exact weight", Split{Backend: true, Canary: 10},
			"battle-winner-predictor-stable=90 battle-winner-predictor-canary=10"},
		{"a shadow copies requests to the canary and sends none", Split{Backend: true, Mirror: 100},
			"battle-winner-predictor-stable=100 mirror=battle-winner-predictor-canary@100"},
		{"without the canary backend neither a weight nor a mirror applies", Split{Canary: 50, Mirror: 100},
			"battle-winner-predictor-stable=100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(t, m, tc.split); got != tc.want {
				t.Errorf("route %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRouteMetadata(t *testing.T) {
	m := servedModel(withGatewayAPI)
	r, err := Route(m, Split{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "battle-winner-predictor" || r.Kind != "HTTPRoute" || r.APIVersion != "gateway.networking.k8s.io/v1" {
		t.Errorf("route %s %s/%s", r.Name, r.APIVersion, r.Kind)
	}
	expectOwner(t, r, m)
	p := r.Spec.ParentRefs[0]
	if p.Name != "public-gw" || *p.Namespace != "gateways" || *p.SectionName != "https" || *p.Port != 443 {
		t.Errorf("parent %+v", p)
	}
	if len(r.Spec.Hostnames) != 1 || r.Spec.Hostnames[0] != "battle.example.com" {
		t.Errorf("hostnames %v", r.Spec.Hostnames)
	}
	if s := StableService(m); s.Spec.Selector[LabelTrack] != TrackStable || s.Spec.Selector[LabelModel] != m.Name {
		t.Errorf("stable Service selector %v", s.Spec.Selector)
	}
	if s := CanaryService(m); s.Spec.Selector[LabelTrack] != TrackCanary {
		t.Errorf("canary Service selector %v", s.Spec.Selector)
	}
}

func TestRouteNeedsAPort(t *testing.T) {
	m := servedModel(withGatewayAPI, withContainers(corev1.Container{Name: "server", Image: "x"}))
	if _, err := Route(m, Split{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v, want ErrInvalid", err)
	}
}
