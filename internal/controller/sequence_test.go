package controller

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/rollout"
	"github.com/podium-dev/podium/internal/serving"
)

var updateSequences = flag.Bool("update", false, "rewrite testdata/rollout-sequences/*.golden with the current sequences")

// track is one prediction Deployment as the sequences play it: its spec and its status, which a
// simulated Deployment controller moves one started pod per tick towards the spec, and at once
// for pods that stop.
type track struct {
	dep *appsv1.Deployment
}

func newTrack(version int64, replicas int32) *track {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 1}}
	d.Spec.Replicas = new(replicas)
	d.Spec.Template.Annotations = map[string]string{serving.AnnotationVersion: strconv.FormatInt(version, 10)}
	t := &track{dep: d}
	for range replicas {
		t.tick()
	}
	return t
}

// scale is Podium's write of the track's replicas.
func (t *track) scale(replicas int32) {
	if *t.dep.Spec.Replicas != replicas {
		t.dep.Spec.Replicas = new(replicas)
		t.dep.Generation++
	}
}

// tick is the Deployment controller's: pods that go stop at once, one new pod becomes available.
func (t *track) tick() {
	s, want := &t.dep.Status, *t.dep.Spec.Replicas
	s.ObservedGeneration = t.dep.Generation
	s.Replicas, s.UpdatedReplicas = want, want
	switch {
	case s.AvailableReplicas > want:
		s.AvailableReplicas = want
	case s.AvailableReplicas < want:
		s.AvailableReplicas++
	}
	s.ReadyReplicas = s.AvailableReplicas
}

func (t *track) available() int32 {
	if t == nil {
		return 0
	}
	return t.dep.Status.AvailableReplicas
}

func (t *track) String() string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", t.available(), *t.dep.Spec.Replicas)
}

// sequence plays a canary of version 2 over Production version 1 with replicas pods and the
// steps' weights, through Podium's capacity rules (stableReplicas, rollout.Pods, canaryEnded),
// until it passes its last step or, at step abortAt (from 1; 0: never), is aborted once that
// step's pods serve and the stable track has shrunk to what they leave it. It returns one line per tick, and fails t when the available pods of both
// tracks ever drop below replicas.
func sequence(t *testing.T, replicas int32, weights []int32, abortAt int) []string {
	t.Helper()
	spec := &mlv1.Rollout{Strategy: mlv1.RolloutCanary}
	for _, w := range weights {
		spec.Steps = append(spec.Steps, mlv1.RolloutStep{Weight: w})
	}
	model := &mlv1.RegisteredModel{Spec: mlv1.RegisteredModelSpec{Serving: &mlv1.Serving{Replicas: new(replicas), Rollout: spec}}}
	production := new(int64(1))
	st := &mlv1.RolloutStatus{Version: 2, VersionUID: "uid-2", Phase: mlv1.RolloutProgressing, Step: new(int32(0))}
	stable, canary := newTrack(1, replicas), (*track)(nil)
	lines := []string{fmt.Sprintf("replicas %d, steps %v, abort at step %d", replicas, weights, abortAt)}
	for tick := 1; tick <= 100; tick++ {
		// Podium, in one reconcile: observe both tracks, decide the replicas of each, write them.
		event := ""
		stableN := replicas
		if n := stableReplicas(model, st, trackDeployment(canary)); n != nil {
			stableN = *n
		}
		ended := !st.Canary() && canary != nil && canaryEnded(model, production, new(serving.Observe(stable.dep)))
		if st.Canary() {
			if canary == nil {
				canary = newTrack(2, 0)
			}
			canary.scale(rollout.Pods(spec, replicas, st))
		}
		stable.scale(stableN)
		if ended {
			canary, event = nil, "canary removed"
		}
		// The Deployment controller.
		stable.tick()
		if canary != nil {
			canary.tick()
		}
		step := "-"
		if st.Step != nil {
			step = fmt.Sprintf("%d (%d%%)", *st.Step+1, weights[*st.Step])
		}
		if total := stable.available() + canary.available(); total < replicas {
			t.Errorf("tick %d: %d pods available, fewer than the %d replicas", tick, total, replicas)
		}
		// The step ends once its canary pods serve and the stable track runs what they leave it.
		if st.Canary() && serving.Observe(canary.dep).Serving && stable.available() == *stable.dep.Spec.Replicas &&
			*stable.dep.Spec.Replicas == *stableReplicas(model, st, canary.dep) && *canary.dep.Spec.Replicas == rollout.Pods(spec, replicas, st) {
			switch next := *st.Step + 1; {
			case abortAt == int(next):
				st.Phase, st.Weight, event = mlv1.RolloutAborted, 0, "aborted"
			case int(next) == len(weights):
				st.Phase, event = mlv1.RolloutSucceeded, "passed its last step"
			default:
				st.Step, event = new(next), "step passed"
			}
		}
		lines = append(lines, strings.TrimRight(fmt.Sprintf("tick %2d  step %-9s stable %-5s canary %-5s available %d  %s",
			tick, step, stable, canary, stable.available()+canary.available(), event), " "))
		if !st.Canary() && (canary == nil || st.Phase == mlv1.RolloutSucceeded) {
			return lines
		}
	}
	t.Fatal("the sequence did not end within 100 ticks")
	return nil
}

func trackDeployment(t *track) *appsv1.Deployment {
	if t == nil {
		return nil
	}
	return t.dep
}

// TestRolloutSequences plays canaries tick by tick, as Cluster API's rollout sequence tests play
// a MachineDeployment, and compares each with testdata/rollout-sequences: the stable track gives
// up a pod only once a canary pod serves in its place, an abort at any step (a 100% one too)
// keeps the canary's pods until the stable track serves on every replica again, and the
// available pods never drop below the replicas.
func TestRolloutSequences(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int32
		weights  []int32
		abortAt  int
	}{
		{"four-replicas-to-full", 4, []int32{25, 50, 100}, 0},
		{"four-replicas-abort-at-full", 4, []int32{25, 50, 100}, 3},
		{"four-replicas-abort-at-half", 4, []int32{25, 50, 100}, 2},
		{"one-replica-abort-at-first", 1, []int32{10, 50}, 1},
		{"three-replicas-crd-example", 3, []int32{10, 50, 100}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(sequence(t, tc.replicas, tc.weights, tc.abortAt), "\n") + "\n"
			file := filepath.Join("testdata", "rollout-sequences", tc.name+".golden")
			if *updateSequences {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v; create it with -update", err)
			}
			if got != string(want) {
				t.Errorf("the sequence changed; if that is intended, run go test ./internal/controller -run TestRolloutSequences -update\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
