package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
)

func TestAVersionNamingNoPossibleModelMapsToNothing(t *testing.T) {
	for name, want := range map[string]int{"churn": 1, "gov/churn": 0, "Churn": 0, "": 0} {
		v := &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "gov", Name: "v"},
			Spec: mlv1.ModelVersionSpec{RegisteredModel: name}}
		if got := modelOfVersion(context.Background(), v); len(got) != want {
			t.Errorf("spec.registeredModel %q maps to %v, want %d request(s)", name, got, want)
		}
	}
}

// Whatever message the rollout's planners build, the status the controller writes fits the CRD.
func TestTheModelStatusBoundsTheRolloutMessages(t *testing.T) {
	long := strings.Repeat("x", 5000)
	model := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m", Generation: 1}}
	ro := &mlv1.RolloutStatus{Version: 2, Phase: mlv1.RolloutAborted, Message: long,
		Metrics: []mlv1.MetricStatus{{Name: "error-rate", Message: long}}}
	s := modelStatus(model, 1, promotion.Decision{}, servingState{}, ro, time.Unix(0, 0))
	if n := len(s.Rollout.Message); n > 1024 {
		t.Errorf("status.rollout.message has %d characters", n)
	}
	if n := len(s.Rollout.Metrics[0].Message); n > 1024 {
		t.Errorf("status.rollout.metrics[0].message has %d characters", n)
	}
	if ro.Message != long {
		t.Errorf("modelStatus changed the rollout status it was given")
	}
}
