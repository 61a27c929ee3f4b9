package explore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// Scripted schedules: fixed steps, fixed cache lags, fixed faults, in the explorer's harness.

// scripted is a world whose trace is printed when the test fails.
func scripted(t *testing.T) *world {
	t.Helper()
	w := newWorld(0)
	w.tracing = true
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trace:\n%s", strings.Join(w.trace, "\n"))
		}
	})
	return w
}

// settleModel reconciles model with a manager whose cache never lags until a reconcile writes
// nothing, as an operator that is up to date does between two user actions.
func (w *world) settleModel(t *testing.T, model string) { //nolint:unparam // scripts may use two models
	t.Helper()
	var setup *manager
	for _, m := range w.managers {
		if m.name == "setup" {
			setup = m
		}
	}
	if setup == nil {
		setup = w.newManager("setup")
		setup.cache.fresh = true
	}
	for range maxSettleRounds {
		w.start(setup, model)
		if writes, err := w.finish(setup); writes == 0 && err == nil {
			return
		}
	}
	t.Fatalf("model %s does not settle", model)
}

// reconcile runs one whole reconcile of model on m, with m's cache as it is; its outcome is in
// the trace.
func (w *world) reconcile(m *manager, model string) { //nolint:unparam // as settleModel
	w.start(m, model)
	_, _ = w.finish(m)
}

// stepUntil steps m's reconcile until the call it waits to make matches, and reports whether
// it got there before the reconcile ended.
func (w *world) stepUntil(m *manager, match func(call) bool) bool {
	for m.run != nil {
		if m.run.next != nil && match(*m.run.next) {
			return true
		}
		w.step(m)
	}
	return false
}

// advanceUntil applies events of kind k to the cache until the next one matches stop (or the
// log ends).
func (c *cache) advanceUntil(k kind, stop func(client.Object) bool) {
	for c.cursor[k] < len(c.srv.logs[k]) {
		if o := c.srv.logs[k][c.cursor[k]].obj; o != nil && stop(o) {
			return
		}
		c.advance(k, 1)
	}
}

// failNext makes m's next write of kind k to name fail with err, without being applied.
func (w *world) failNext(m *manager, k kind, name string, err error) {
	w.rules = append(w.rules, &faultRule{manager: m.name, err: err, times: 1,
		match: func(c call) bool { return c.write && c.kind == k && c.key.Name == name }})
}

func isStatusPatchOf(name string) func(call) bool {
	return func(c call) bool { return c.write && c.kind == versions && c.key.Name == name }
}

func becomesProduction(name string) func(client.Object) bool {
	return func(o client.Object) bool {
		v, ok := o.(*mlv1.ModelVersion)
		return ok && v.Name == name && v.Status.Stage == mlv1.StageProduction
	}
}

// expect fails the test for every violation found, and when the server's stages differ from want
// (version name to stage).
func (w *world) expect(t *testing.T, model string, want map[string]mlv1.Stage) { //nolint:unparam // as settleModel
	t.Helper()
	for _, v := range w.violations {
		t.Errorf("%s", v)
	}
	for name, stage := range want {
		if v := w.srv.version(name); v == nil || v.Status.Stage != stage {
			got := mlv1.Stage("(deleted)")
			if v != nil {
				got = v.Status.Stage
			}
			t.Errorf("%s is %q, want %q", name, got, stage)
		}
	}
	if t.Failed() {
		var lines []string
		for _, v := range w.srv.versionsOf(model) {
			lines = append(lines, summary(v))
		}
		if m := w.srv.model(model); m != nil {
			lines = append(lines, summary(m))
		}
		t.Logf("on the server:\n%s", strings.Join(lines, "\n"))
	}
}

func expectStage(t *testing.T, w *world, name string, want mlv1.Stage) {
	t.Helper()
	if v := w.srv.version(name); v == nil || v.Status.Stage != want {
		t.Fatalf("setup: %s is not %s:\n%s", name, want, summary(v))
	}
}

var errUnavailable = apierrors.NewServiceUnavailable("injected unavailability")

func TestRegressions(t *testing.T) {
	t.Run("lag alone gives two Production versions after a retirement", func(t *testing.T) {
		w := scripted(t)
		w.createModel("alpha", mlv1.PromotionAutomatic, gates("0.85"))
		for _, n := range []int64{3, 4, 5} {
			w.register("alpha", fmt.Sprintf("alpha-%d", n), n, "0.9", "")
			w.settleModel(t, "alpha")
		}
		// Roll back to 3, then forward to 4 by request: the history holds 3 and 4 each reached
		// from Archived, and 4 is Production.
		w.requestStage("alpha-3", mlv1.StageProduction)
		w.settleModel(t, "alpha")
		w.requestStage("alpha-4", mlv1.StageProduction)
		w.settleModel(t, "alpha")
		expectStage(t, w, "alpha-4", mlv1.StageProduction)

		m1 := w.newManager("m1")
		w.requestStage("alpha-4", mlv1.StageArchived)
		m1.cache.catchUp()
		w.reconcile(m1, "alpha") // model: Production 3; alpha-4 Archived; alpha-3 Production
		expectStage(t, w, "alpha-3", mlv1.StageProduction)
		// The model cache has not seen that write; the version cache has alpha-4's write but
		// not alpha-3's.
		m1.cache.advanceUntil(versions, becomesProduction("alpha-3"))
		w.reconcile(m1, "alpha")
		w.settle([]string{"alpha"})
		w.expect(t, "alpha", map[string]mlv1.Stage{"alpha-3": mlv1.StageProduction, "alpha-4": mlv1.StageArchived})
	})

	t.Run("a transient error then lag gives two Production versions", func(t *testing.T) {
		w := scripted(t)
		w.createModel("alpha", mlv1.PromotionManual, gates("0.85"))
		for _, n := range []int64{4, 5, 6} {
			w.register("alpha", fmt.Sprintf("alpha-%d", n), n, "0.9", "")
		}
		w.settleModel(t, "alpha")
		w.requestStage("alpha-4", mlv1.StageProduction)
		w.settleModel(t, "alpha")
		w.requestStage("alpha-5", mlv1.StageProduction)
		w.settleModel(t, "alpha")
		expectStage(t, w, "alpha-4", mlv1.StageArchived)

		// Someone retires 5 and then asks for 6; a lagging manager sees only the retirement and
		// restores 4.
		m0, m1 := w.newManager("m0"), w.newManager("m1")
		w.requestStage("alpha-5", mlv1.StageArchived)
		m0.cache.catchUp()
		w.requestStage("alpha-6", mlv1.StageProduction)
		w.reconcile(m0, "alpha")
		if v := w.srv.version("alpha-4"); v.Status.Stage != mlv1.StageProduction {
			t.Logf("m0 did not restore 4 from its lagging cache (%s): the rest of the scenario cannot arise", summary(v))
		}

		// m1 sees the restoring model, and every version write but alpha-4's restoration.
		m1.cache.advance(models, m1.cache.lag(models))
		m1.cache.advanceUntil(versions, becomesProduction("alpha-4"))
		// It promotes 6: the model write succeeds, the demotion of 4 fails.
		w.failNext(m1, versions, "alpha-4", errUnavailable)
		w.reconcile(m1, "alpha")
		// The next pass sees its model write, and still the stale alpha-4.
		m1.cache.advance(models, m1.cache.lag(models))
		w.reconcile(m1, "alpha")
		w.settle([]string{"alpha"})
		w.expect(t, "alpha", map[string]mlv1.Stage{"alpha-6": mlv1.StageProduction, "alpha-4": mlv1.StageArchived})
	})

	t.Run("a lagging model cache does not undo a roll-forward", func(t *testing.T) {
		w := scripted(t)
		w.createModel("alpha", mlv1.PromotionManual, gates("0.85"))
		w.register("alpha", "alpha-4", 4, "0.9", "")
		w.register("alpha", "alpha-5", 5, "0.9", "")
		w.settleModel(t, "alpha")
		for _, step := range []struct {
			name  string
			stage mlv1.Stage
		}{
			{"alpha-4", mlv1.StageProduction}, {"alpha-5", mlv1.StageProduction},
			{"alpha-4", ""}, {"alpha-4", mlv1.StageProduction},
		} {
			w.requestStage(step.name, step.stage)
			w.settleModel(t, "alpha")
		}
		expectStage(t, w, "alpha-4", mlv1.StageProduction) // rolled back to 4 from 5

		m1 := w.newManager("m1") // its model cache says Production 4 from now on
		w.requestStage("alpha-5", "")
		w.settleModel(t, "alpha")
		w.requestStage("alpha-5", mlv1.StageProduction)
		w.settleModel(t, "alpha")
		expectStage(t, w, "alpha-5", mlv1.StageProduction)

		m1.cache.advance(versions, m1.cache.lag(versions))
		w.reconcile(m1, "alpha")
		w.expect(t, "alpha", map[string]mlv1.Stage{"alpha-5": mlv1.StageProduction, "alpha-4": mlv1.StageArchived})
		w.settle([]string{"alpha"})
		w.expect(t, "alpha", map[string]mlv1.Stage{"alpha-5": mlv1.StageProduction, "alpha-4": mlv1.StageArchived})
	})

	t.Run("a rollback request is acted on once", func(t *testing.T) {
		w := scripted(t)
		w.createModel("alpha", mlv1.PromotionAutomatic, gates("0.85"))
		for _, n := range []int64{3, 4} {
			w.register("alpha", fmt.Sprintf("alpha-%d", n), n, "0.9", "")
			w.settleModel(t, "alpha")
		}
		m0, m1 := w.newManager("m0"), w.newManager("m1")
		w.requestStage("alpha-3", mlv1.StageProduction)
		m0.cache.catchUp()
		// The rollback is decided; version 5 is registered before the rollback reaches alpha-3.
		w.start(m0, "alpha")
		if !w.stepUntil(m0, isStatusPatchOf("alpha-3")) {
			t.Fatal("setup: the rollback never writes alpha-3")
		}
		w.register("alpha", "alpha-5", 5, "0.9", "")
		_, _ = w.finish(m0)
		expectStage(t, w, "alpha-3", mlv1.StageProduction)

		// m1 sees the model and alpha-5, not alpha-3's observedStageRequest.
		m1.cache.advance(models, m1.cache.lag(models))
		m1.cache.advanceUntil(versions, func(o client.Object) bool {
			v, ok := o.(*mlv1.ModelVersion)
			return ok && v.Name == "alpha-3" && v.Status.ObservedStageRequest == mlv1.StageProduction
		})
		w.reconcile(m1, "alpha")
		w.settle([]string{"alpha"})
		// Version 5 came after the rollback and passes: the newest event wins.
		w.expect(t, "alpha", map[string]mlv1.Stage{"alpha-5": mlv1.StageProduction, "alpha-3": mlv1.StageArchived})
	})

	t.Run("two managers at once with fresh reads never give two Production versions", func(t *testing.T) {
		n := 300
		if testing.Short() {
			n = 50
		}
		run := func(s uint64, tracing bool) *world {
			w := newWorld(s)
			w.tracing = tracing
			w.explore(params{models: 1, managers: 2, userSteps: 10 + w.rng.IntN(31), fresh: true})
			return w
		}
		for s := uint64(1); s <= uint64(n); s++ {
			// Only the invariants checked at every write are this test's; the final checks are
			// TestExplore's.
			if v := run(s, false).violations; len(v) > 0 && (v[0].check == twoProduction || v[0].check == unrecordedProduction) {
				t.Fatalf("seed %d: %s\ntrace:\n%s", s, v[0], strings.Join(run(s, true).trace, "\n"))
			}
		}
	})
}

// settleServing reconciles model with a manager whose cache never lags, answering every
// measurement and playing every Deployment between two reconciles, until three rounds in a row
// change nothing.
func (w *world) settleServing(t *testing.T, model string) {
	t.Helper()
	calm := 0
	for range maxServingSettleRounds {
		w.settleModel(t, model)
		if w.answerAll()+w.playDeployments() == 0 {
			if calm++; calm == 3 {
				return
			}
			continue
		}
		calm = 0
	}
	t.Fatalf("model %s does not settle", model)
}

// TestCanaryRegressions holds scripted canary schedules.
func TestCanaryRegressions(t *testing.T) {
	t.Run("a sample older than its step is no measurement of its metric", func(t *testing.T) {
		w := scripted(t)
		w.serving = canaryServing
		spec := &mlv1.Serving{Replicas: new(int32(2)), Fetch: new(false), ProgressDeadlineSeconds: new(int32(60)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "predictor", Image: "registry.example.com/predictor:1"}}}}}
		w.rng = rand.New(rand.NewPCG(1, 1))
		spec.Rollout = w.canary()
		spec.Rollout.Steps = []mlv1.RolloutStep{{Weight: 50, Duration: metav1.Duration{Duration: 5 * time.Second}}}
		spec.Rollout.Analysis.Metrics = nil
		for _, f := range slices.Sorted(maps.Keys(families)) {
			spec.Rollout.Analysis.Metrics = append(spec.Rollout.Analysis.Metrics, mlv1.AnalysisMetric{
				Name: families[f].metric, Query: fmt.Sprintf(`max(%s{model="{{.Model}}",version="{{.Version}}"})`, f),
				Max: num(families[f].bound)})
		}
		w.user("creates model alpha with a canary of one step, measured by error-rate and p99-latency")
		w.userErr(w.srv.create(&mlv1.RegisteredModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alpha"},
			Spec: mlv1.RegisteredModelSpec{Promotion: mlv1.Promotion{Mode: mlv1.PromotionAutomatic, Gates: gates("0.85")},
				Serving: spec}}))
		w.register("alpha", "alpha-1", 1, "0.9", "")
		w.settleServing(t, "alpha")
		if v := w.srv.version("alpha-1"); v.Status.Stage != mlv1.StageProduction {
			t.Fatalf("alpha-1 is %q, want Production: the rest of the scenario cannot arise", v.Status.Stage)
		}
		// Prometheus answers every error-rate query with a sample from before the step began,
		// and every latency query with a passing value.
		w.prom.forced = map[string]answerKind{"explore_error_ratio": stale, "explore_latency_seconds": pass}
		w.register("alpha", "alpha-2", 2, "0.95", "")
		w.settleServing(t, "alpha")
		if v := w.srv.version("alpha-2"); v.Status.Stage == mlv1.StageProduction {
			t.Errorf("alpha-2 became Production although its error-rate was never measured in its step: %s", summary(v))
		}
	})
}
