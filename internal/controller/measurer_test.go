package controller

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/rollout"
)

// prometheusAnswering answers every query with value, once release is closed (nil: at once).
func prometheusAnswering(t *testing.T, value string, release chan struct{}) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if release != nil {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1764285000,"` + value + `"]}}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func measuredModel(address string) (*mlv1.RegisteredModel, *mlv1.Rollout, *mlv1.RolloutStatus) {
	spec := &mlv1.Rollout{Strategy: mlv1.RolloutCanary, Analysis: &mlv1.Analysis{
		Prometheus: mlv1.Prometheus{Address: address},
		Metrics:    []mlv1.AnalysisMetric{{Name: "a", Query: `x{v="{{.Version}}"}`}, {Name: "b", Query: "{{.Nope}}"}},
	}}
	model := &mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "m"}}
	st := &mlv1.RolloutStatus{Version: 2, VersionUID: "uid-2", Phase: mlv1.RolloutProgressing, Step: new(int32(0)),
		StepStartTime: &metav1.Time{Time: time.Unix(1764284000, 0)}}
	return model, spec, st
}

func TestTheMeasurerMeasuresOffTheWorkerAndWakesTheModel(t *testing.T) {
	g := gomega.NewWithT(t)
	events := make(chan event.GenericEvent, 1)
	release := make(chan struct{}) // Prometheus answers only once both takes are done
	m := newMeasurer(nil, 4, events)
	model, spec, st := measuredModel(prometheusAnswering(t, "0.25", release))
	g.Expect(m.take(model, spec, st)).To(gomega.BeEmpty(), "the first take starts the queries and returns at once")
	g.Expect(m.take(model, spec, st)).To(gomega.BeEmpty(), "one set of queries at a time")
	close(release)
	var woken event.GenericEvent
	g.Eventually(events).WithTimeout(10 * time.Second).Should(gomega.Receive(&woken))
	g.Expect(woken.Object.GetNamespace() + "/" + woken.Object.GetName()).To(gomega.Equal("ml/m"))
	got := m.take(model, spec, st)
	g.Expect(got).To(gomega.HaveLen(2))
	g.Expect(got[0].Err).NotTo(gomega.HaveOccurred())
	g.Expect(got[0].Value).To(gomega.Equal(0.25))
	g.Expect(got[0].For).To(gomega.Equal(rollout.TargetOf(st)), "stamped with the rollout it measured")
	g.Expect(got[1].Err).To(gomega.MatchError(gomega.ContainSubstring(`"{{.Nope}}"`)))
}

func TestTheMeasurerForgetsADeletedModel(t *testing.T) {
	g := gomega.NewWithT(t)
	release := make(chan struct{})
	m := newMeasurer(nil, 4, nil)
	model, spec, st := measuredModel(prometheusAnswering(t, "1", release))
	key := types.NamespacedName{Namespace: "ml", Name: "m"}
	g.Expect(m.take(model, spec, st)).To(gomega.BeEmpty())
	m.forget(key) // the model is deleted while its queries run
	close(release)
	g.Eventually(func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.running[key]
	}).WithTimeout(10 * time.Second).Should(gomega.BeFalse())
	m.mu.Lock()
	defer m.mu.Unlock()
	g.Expect(m.ready).NotTo(gomega.HaveKey(key), "the deleted model's measurements were kept")
	g.Expect(m.gone).To(gomega.BeEmpty())
}

// A reconcile that could not record what it took (its cache lagged its own last write, or a write
// failed) hands the measurements back, and the next reconcile takes them, not a new set.
func TestTheMeasurerTakesBackWhatWasNotRecorded(t *testing.T) {
	g := gomega.NewWithT(t)
	events := make(chan event.GenericEvent, 1)
	m := newMeasurer(nil, 4, events)
	model, spec, st := measuredModel(prometheusAnswering(t, "0.5", nil))
	key := types.NamespacedName{Namespace: "ml", Name: "m"}
	g.Expect(m.take(model, spec, st)).To(gomega.BeEmpty())
	g.Eventually(events).WithTimeout(10 * time.Second).Should(gomega.Receive())
	got := m.take(model, spec, st)
	g.Expect(got).To(gomega.HaveLen(2))
	m.giveBack(key, got)
	again := m.take(model, spec, st)
	g.Expect(again).To(gomega.Equal(got), "the measurements handed back are taken again")
	g.Expect(m.take(model, spec, st)).To(gomega.BeEmpty(), "and once only: a new set starts")
	m.giveBack(key, got)
	m.mu.Lock()
	defer m.mu.Unlock()
	g.Expect(m.ready).NotTo(gomega.HaveKey(key), "a set running when they come back is newer: they are dropped")
}
