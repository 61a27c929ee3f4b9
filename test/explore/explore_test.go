package explore

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var (
	seeds     = flag.Int("seeds", 2000, "how many random schedules TestExplore runs (fewer under -race: see race_test.go)")
	seedStart = flag.Uint64("seed-start", 1, "the first seed TestExplore runs")
	seed      = flag.Int64("seed", -1, "replay this one seed and print its trace")
	traces    = flag.Int("traces", 1, "for each failed check, how many failing seeds to print the trace of")
)

// runSchedule runs the random schedule of seed; with tracing, the world keeps its trace.
func runSchedule(seed uint64, tracing bool) *world {
	w := newWorld(seed)
	w.tracing = tracing
	p := w.randomParams()
	w.tracef("schedule %d: %s", seed, p)
	w.explore(p)
	return w
}

// TestExplore runs -seeds random schedules from -seed-start, or replays -seed with its trace.
// A failure names, for each check that failed, how many schedules broke it and the first seeds,
// with the whole trace of the first -traces of them.
func TestExplore(t *testing.T) {
	if *seed >= 0 {
		w := runSchedule(uint64(*seed), true)
		t.Logf("trace of seed %d:\n%s", *seed, strings.Join(w.trace, "\n"))
		for _, v := range w.violations {
			t.Errorf("seed %d: %s", *seed, v)
		}
		return
	}
	n := *seeds
	if testing.Short() {
		n = min(n, 200)
	}
	start := time.Now()
	failed := map[uint64]violation{}
	canaries := map[mlv1.RolloutPhase]int{}
	withCanaries, deletions, versionDeletions := 0, 0, 0
	var mu sync.Mutex
	next := make(chan uint64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for s := range next {
				w := runSchedule(s, false)
				mu.Lock()
				if len(w.violations) > 0 {
					failed[s] = w.violations[0]
				}
				if w.canaries["begun"] > 0 {
					withCanaries++
				}
				for phase, n := range w.canaries {
					canaries[phase] += n
				}
				deletions += len(w.srv.deletedWithHistory)
				versionDeletions += len(w.srv.deletedProduction)
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- *seedStart + uint64(i)
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)

	byCheck := map[string][]uint64{}
	for s, v := range failed {
		byCheck[v.check] = append(byCheck[v.check], s)
	}
	for _, check := range slices.Sorted(maps.Keys(byCheck)) {
		bad := byCheck[check]
		slices.Sort(bad)
		first := bad[0]
		msg := fmt.Sprintf("%s: %d schedule(s), seeds %v\nfirst: seed %d: %s\n"+
			"replay: go test ./test/explore -run 'TestExplore$' -count=1 -v -args -seed=%d",
			check, len(bad), bad[:min(len(bad), 20)], first, failed[first].message, first)
		for _, s := range bad[:min(len(bad), *traces)] {
			msg += fmt.Sprintf("\ntrace of seed %d:\n%s", s, strings.Join(runSchedule(s, true).trace, "\n"))
		}
		t.Error(msg)
	}
	t.Logf("explored %d schedules (seeds %d..%d) in %v: %.0f schedules/s; %d with violations",
		n, *seedStart, *seedStart+uint64(n)-1, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(failed))
	t.Logf("%d schedules ran canaries: %d begun, %d passed their steps into a bake, %d succeeded without one, %d aborted "+
		"(a canary replaced by another ends Aborted too)", withCanaries, canaries["begun"], canaries[mlv1.RolloutBaking],
		canaries[mlv1.RolloutSucceeded], canaries[mlv1.RolloutAborted])
	t.Logf("%d canaries had their rollout removed from the spec while they ran; people changed a served model's "+
		"pod template %d times", canaries["removed"], canaries["template"])
	t.Logf("%d models were deleted with history, each checked for the record of its deletion", deletions)
	t.Logf("%d Production versions were deleted with the operator's finalizer, each checked for who the history "+
		"says retired it", versionDeletions)
}

// TestReplayIsDeterministic: a seed always gives the same schedule, so a failing seed replays.
func TestReplayIsDeterministic(t *testing.T) {
	for s := uint64(1); s <= 20; s++ {
		a, b := runSchedule(s, true), runSchedule(s, true)
		if !slices.Equal(a.trace, b.trace) {
			t.Fatalf("seed %d gave two different traces", s)
		}
	}
}

// TestServerEnforcesResourceVersion: the in-memory API server refuses a status patch whose
// resourceVersion precondition is stale with 409, as the real one does, and applies it when it
// is current; creation and spec changes move the generation as the real one does.
func TestServerEnforcesResourceVersion(t *testing.T) {
	w := newWorld(1)
	w.createModel("alpha", mlv1.PromotionAutomatic, gates("0.85"))
	w.register("alpha", "alpha-1", 1, "0.9", "")
	ctx := context.Background()
	key := client.ObjectKey{Namespace: ns, Name: "alpha-1"}

	stale := &mlv1.ModelVersion{}
	if err := w.srv.fake.Get(ctx, key, stale); err != nil {
		t.Fatal(err)
	}
	if stale.Generation != 1 || stale.UID == "" {
		t.Fatalf("a created version has generation %d and UID %q, want 1 and a UID", stale.Generation, stale.UID)
	}
	w.requestStage("alpha-1", mlv1.StageProduction)
	if v := w.srv.version("alpha-1"); v.Generation != 2 {
		t.Fatalf("a spec change left the generation at %d, want 2", v.Generation)
	}

	patched := stale.DeepCopy()
	patched.Status.Stage = mlv1.StageProduction
	locked := func(base client.Object) client.Patch {
		return client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	}
	err := w.srv.fake.Status().Patch(ctx, patched, locked(stale))
	if !apierrors.IsConflict(err) {
		t.Fatalf("a status patch with a stale resourceVersion returned %v, want a 409 Conflict", err)
	}
	fresh := &mlv1.ModelVersion{}
	if err := w.srv.fake.Get(ctx, key, fresh); err != nil {
		t.Fatal(err)
	}
	patched = fresh.DeepCopy()
	patched.Status.Stage = mlv1.StageStaging
	if err := w.srv.fake.Status().Patch(ctx, patched, locked(fresh)); err != nil {
		t.Fatalf("a status patch with the current resourceVersion failed: %v", err)
	}
	// An unconditional merge patch applies whatever the resourceVersion.
	patched = stale.DeepCopy()
	patched.Status.Stage = mlv1.StageArchived
	if err := w.srv.fake.Status().Patch(ctx, patched, client.MergeFrom(stale)); err != nil {
		t.Fatalf("an unconditional status patch failed: %v", err)
	}
	got := &mlv1.ModelVersion{}
	if err := w.srv.fake.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Stage != mlv1.StageArchived || got.Spec.Stage != mlv1.StageProduction {
		t.Fatalf("after the patches: spec.stage %q, status.stage %q; want Production, Archived",
			got.Spec.Stage, got.Status.Stage)
	}
	if fmt.Sprint(got.Generation) != "2" {
		t.Fatalf("a status patch moved the generation to %d", got.Generation)
	}
}
