package controller

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/analysis"
	"github.com/podium-dev/podium/internal/metrics"
	"github.com/podium-dev/podium/internal/rollout"
	"github.com/podium-dev/podium/internal/serving"
)

const (
	// measureTimeout bounds one analysis query: a Prometheus that does not answer makes the
	// measurement inconclusive.
	measureTimeout = 10 * time.Second
	// measureBudget bounds one model's measurements of one interval, its wait for a query slot
	// included: they run side by side, each within measureTimeout.
	measureBudget = 15 * time.Second
	// DefaultMaxQueries bounds the analysis queries in flight across every model.
	DefaultMaxQueries = 32
)

// errBusy makes a measurement inconclusive when no query slot came free within its budget.
var errBusy = errors.New("every analysis query slot of the operator stayed busy for the interval's budget " +
	"(other models' Prometheus servers answer slowly, or not at all); measured again at the next interval")

// measurer takes the online gates' measurements off the reconcile workers. A reconcile whose
// rollout is due asks for them (take): the first time, take starts the queries of every metric
// side by side in goroutines and returns none; once they have all answered or timed out, the
// measurer wakes the model (events), and the next reconcile takes them. A Prometheus that
// stalls so holds no worker: it delays only its own model's analysis, and, past the shared
// query slots, other canaries' analysis, never a promotion that needs none.
type measurer struct {
	client *http.Client
	// slots bounds the queries in flight; events wakes a model whose measurements are ready
	// (nil when nothing listens, as in the explorer, which drives the measurements itself).
	slots  chan struct{}
	events chan event.GenericEvent
	// start runs one model's measurement, off the caller's goroutine (see
	// RegisteredModelReconciler.StartMeasurement).
	start func(model types.NamespacedName, run func())

	mu      sync.Mutex
	ready   map[types.NamespacedName][]rollout.Measurement
	running map[types.NamespacedName]bool
	gone    map[types.NamespacedName]bool // models deleted while their measurements ran
}

func newMeasurer(client *http.Client, maxQueries int, events chan event.GenericEvent) *measurer {
	if maxQueries <= 0 {
		maxQueries = DefaultMaxQueries
	}
	return &measurer{client: client, slots: make(chan struct{}, maxQueries), events: events,
		start: func(_ types.NamespacedName, run func()) { go run() },
		ready: map[types.NamespacedName][]rollout.Measurement{}, running: map[types.NamespacedName]bool{},
		gone: map[types.NamespacedName]bool{}}
}

// take returns the measurements taken for the model's rollout since the last take, and starts
// the next ones when none are running: st is the rollout they are taken for, each stamped with
// its target, so that a view of another candidate or step does not count them.
func (m *measurer) take(model *mlv1.RegisteredModel, spec *mlv1.Rollout, st *mlv1.RolloutStatus) []rollout.Measurement {
	key := types.NamespacedName{Namespace: model.Namespace, Name: model.Name}
	m.mu.Lock()
	defer m.mu.Unlock()
	if got, ok := m.ready[key]; ok {
		delete(m.ready, key)
		return got
	}
	if m.running[key] {
		return nil
	}
	m.running[key] = true
	queries := renderQueries(model, spec, st)
	address := spec.Analysis.Prometheus.Address
	m.start(key, func() { m.run(key, address, queries) })
	return nil
}

// giveBack returns measurements that take handed out but the reconcile could not record (its
// cache lagged its own last write, or a write failed), for the next take, unless newer ones are
// ready or running by then. They keep their target: a next view of another rollout drops them.
func (m *measurer) giveBack(key types.NamespacedName, got []rollout.Measurement) {
	if len(got) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ready[key]; ok || m.running[key] {
		return
	}
	m.ready[key] = got
}

// forget drops what the measurer holds for a model that is gone; measurements still running for
// it are dropped when they end.
func (m *measurer) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ready, key)
	if m.running[key] {
		m.gone[key] = true
	}
}

// query is one metric's rendered query, or why it has none.
type query struct {
	metric mlv1.AnalysisMetric
	text   string
	err    error
	target rollout.Target
}

func renderQueries(model *mlv1.RegisteredModel, spec *mlv1.Rollout, st *mlv1.RolloutStatus) []query {
	track := serving.TrackCanary
	if st.Phase == mlv1.RolloutBaking {
		track = serving.TrackStable
	}
	vars := analysis.Vars{Namespace: model.Namespace, Model: model.Name, Version: st.Version, Track: track}
	out := make([]query, 0, len(spec.Analysis.Metrics))
	for _, metric := range spec.Analysis.Metrics {
		text, err := analysis.Render(metric.Query, vars)
		out = append(out, query{metric: metric, text: text, err: err, target: rollout.TargetOf(st)})
	}
	return out
}

// run measures every query side by side within measureBudget, records the results for the
// model's next reconcile and wakes it.
func (m *measurer) run(key types.NamespacedName, address string, queries []query) {
	ctx, cancel := context.WithTimeout(context.Background(), measureBudget)
	defer cancel()
	prom := analysis.Prometheus{Address: address, Client: m.client}
	got := make([]rollout.Measurement, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() {
			got[i] = m.measure(ctx, prom, q)
			metrics.RecordMeasurement(key.Namespace, key.Name, q.metric.Name, measurementResult(got[i], q.metric))
		})
	}
	wg.Wait()
	m.mu.Lock()
	delete(m.running, key)
	if m.gone[key] {
		delete(m.gone, key)
		m.mu.Unlock()
		return
	}
	m.ready[key] = got
	m.mu.Unlock()
	if m.events != nil {
		model := &mlv1.RegisteredModel{}
		model.Namespace, model.Name = key.Namespace, key.Name
		select {
		case m.events <- event.GenericEvent{Object: model}:
		default: // the model's next requeue takes them
		}
	}
}

func (m *measurer) measure(ctx context.Context, prom analysis.Prometheus, q query) rollout.Measurement {
	got := rollout.Measurement{Name: q.metric.Name, For: q.target, Err: q.err}
	if q.err != nil {
		return got
	}
	select {
	case m.slots <- struct{}{}:
		defer func() { <-m.slots }()
	case <-ctx.Done():
		got.Err = errBusy
		return got
	}
	qctx, cancel := context.WithTimeout(ctx, measureTimeout)
	defer cancel()
	got.Value, got.At, got.Err = prom.Sample(qctx, q.text)
	return got
}
