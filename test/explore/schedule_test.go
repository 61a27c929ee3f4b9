package explore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
)

// modelNames are the models a schedule works with: the first one or both.
var modelNames = []string{"alpha", "beta"}

func num(s string) *mlv1.Number { n := mlv1.Number(s); return &n }

func gates(min string) []mlv1.Gate {
	if min == "" {
		return nil
	}
	return []mlv1.Gate{{Metric: "test_accuracy", Min: num(min)}}
}

// The user's actions. They write to the server directly, never fail by injection, and are
// traced; an error (say, the version was deleted meanwhile) is traced and otherwise ignored.

func (w *world) user(format string, args ...any) {
	w.actor = "user"
	w.tracef("user: "+format, args...)
}

func (w *world) userErr(err error) {
	if err != nil {
		w.tracef("      user: %v", err)
	}
}

func (w *world) createModel(name string, mode mlv1.PromotionMode, g []mlv1.Gate) {
	w.user("creates model %s, mode %s, gates %s", name, mode, gateString(g))
	w.userErr(w.srv.create(&mlv1.RegisteredModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       mlv1.RegisteredModelSpec{Promotion: mlv1.Promotion{Mode: mode, Gates: g}, Serving: w.servingSpec()},
	}))
}

func gateString(g []mlv1.Gate) string {
	if len(g) == 0 {
		return "none"
	}
	var parts []string
	for _, x := range g {
		parts = append(parts, fmt.Sprintf("%s >= %s", x.Metric, optionalNumber(x.Min)))
	}
	return strings.Join(parts, ", ")
}

// register creates ModelVersion name, version n of model, with spec.stage in its manifest when
// stage is set.
func (w *world) register(model, name string, n int64, accuracy string, stage mlv1.Stage) {
	w.user("registers %s: version %d of %s, test_accuracy %s, spec.stage %q", name, n, model, accuracy, stage)
	w.userErr(w.srv.create(&mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: model,
			Version:         n,
			Artifact:        mlv1.Artifact{URI: fmt.Sprintf("s3://models/%s/%d/", model, n)},
			Metrics:         map[string]mlv1.Number{"test_accuracy": mlv1.Number(accuracy)},
			Stage:           stage,
		},
	}))
}

// requestStage sets spec.stage; "" clears it.
func (w *world) requestStage(name string, stage mlv1.Stage) {
	w.user("sets spec.stage of %s to %q", name, stage)
	w.userErr(w.srv.updateSpec(versions, name, func(o client.Object) { o.(*mlv1.ModelVersion).Spec.Stage = stage }))
}

// deleteVersion deletes a version, half the time marked first, as kubectl podium delete does
// (the explorer plays the admission policy that stamps who marked it). When the version carries
// the operator's finalizer as the model's Production version, the history entry that retires it
// must name whoever marked it.
func (w *world) deleteVersion(name string) {
	by := ""
	if cur := w.srv.version(name); cur != nil && cur.DeletionTimestamp != nil {
		// The record policy refuses to change the mark of a version being deleted: it names who
		// deleted it.
		w.user("deletes version %s again, being deleted already, without marking it", name)
	} else if w.rng.IntN(2) == 0 {
		by = "user-" + strconv.Itoa(w.rng.IntN(3))
		w.user("marks version %s for deletion as %s", name, by)
		w.userErr(w.srv.updateSpec(versions, name, func(o client.Object) {
			a := maps.Clone(o.GetAnnotations())
			if a == nil {
				a = map[string]string{}
			}
			a[mlv1.AnnotationDeleteRequested] = w.now().Format(time.RFC3339Nano)
			a[mlv1.AnnotationDeleteRequestedBy] = by
			o.SetAnnotations(a)
		}))
	}
	v := w.srv.version(name)
	if v != nil && v.DeletionTimestamp == nil && controllerutil.ContainsFinalizer(v, mlv1.FinalizerStageRecords) {
		if m := w.srv.model(v.Spec.RegisteredModel); m != nil && m.Status.ProductionVersionUID == string(v.UID) {
			w.srv.deletedProduction = append(w.srv.deletedProduction, deletedVersion{
				name: name, uid: string(v.UID), model: m.Name, modelUID: string(m.UID), by: by})
		}
	}
	w.user("deletes version %s", name)
	w.userErr(w.srv.delete(versions, name))
}

func (w *world) deleteModel(name string) {
	w.user("deletes model %s", name)
	w.userErr(w.srv.delete(models, name))
}

func (w *world) setPromotion(name string, mode mlv1.PromotionMode, g []mlv1.Gate) {
	w.user("changes model %s to mode %s, gates %s", name, mode, gateString(g))
	w.userErr(w.srv.updateSpec(models, name, func(o client.Object) {
		o.(*mlv1.RegisteredModel).Spec.Promotion = mlv1.Promotion{Mode: mode, Gates: g}
	}))
}

var (
	accuracies = []string{"0.8", "0.86", "0.88", "0.91", "0.95"}
	requests   = []mlv1.Stage{mlv1.StageProduction, mlv1.StageProduction, mlv1.StageProduction,
		mlv1.StageArchived, mlv1.StageArchived, mlv1.StageStaging, mlv1.StageNone, ""}
	minima = []string{"0.85", "0.85", "0.85", "0.9", "0.9", ""}
)

func (w *world) randomMode() mlv1.PromotionMode {
	if w.rng.IntN(10) < 3 {
		return mlv1.PromotionManual
	}
	return mlv1.PromotionAutomatic
}

// randomUserAction does one thing a person or a GitOps tool does to the models.
func (w *world) randomUserAction(names []string) {
	model := names[w.rng.IntN(len(names))]
	exists := w.srv.model(model) != nil
	all := make([]*mlv1.ModelVersion, 0, len(w.srv.live[versions]))
	for _, n := range names {
		all = append(all, w.srv.versionsOf(n)...)
	}
	if w.serving == canaryServing && w.rng.IntN(4) == 0 && w.randomRolloutRequest(model, all) {
		return
	}
	if w.serving != noServing && exists && w.rng.IntN(8) == 0 {
		w.changeServing(model)
		return
	}
	r := w.rng.IntN(100)
	switch {
	case !exists && (r < 35 || len(all) == 0 && r < 85):
		w.createModel(model, w.randomMode(), gates(minima[w.rng.IntN(len(minima))]))
	case r < 45 || len(all) == 0:
		w.randomRegistration(model)
	case r < 72:
		v := all[w.rng.IntN(len(all))]
		w.requestStage(v.Name, requests[w.rng.IntN(len(requests))])
	case r < 82:
		v := all[w.rng.IntN(len(all))]
		if w.rng.IntN(5) < 2 {
			for _, o := range all {
				if o.Status.Stage == mlv1.StageProduction {
					v = o
				}
			}
		}
		w.deleteVersion(v.Name)
	case r < 90 && exists:
		w.setPromotion(model, w.randomMode(), gates(minima[w.rng.IntN(len(minima))]))
	case r < 94 && exists:
		w.deleteModel(model)
	default:
		w.randomRegistration(model)
	}
}

func (w *world) randomRegistration(model string) {
	n := int64(1 + w.rng.IntN(8))
	name := fmt.Sprintf("%s-%d", model, n)
	if w.srv.version(name) != nil {
		name += "-b" // a second ModelVersion claiming the same number
		if w.srv.version(name) != nil {
			return
		}
	}
	var stage mlv1.Stage
	if w.rng.IntN(100) < 12 {
		stage = mlv1.StageProduction
	}
	w.register(model, name, n, accuracies[w.rng.IntN(len(accuracies))], stage)
}

// params is what a random schedule is made of.
type params struct {
	models, managers, userSteps int
	faults                      faults
	// fresh makes every cache read see the server as it is.
	fresh bool
	// serving is what the models serve.
	serving servingMode
}

func (p params) String() string {
	return fmt.Sprintf("%d model(s), %d manager(s), %d user steps, serving %s; "+
		"faults: write %.2f, after commit %.2f, read %.2f, crash %.3f",
		p.models, p.managers, p.userSteps, p.serving, p.faults.write, p.faults.commit, p.faults.read, p.faults.crash)
}

func (w *world) randomParams() params {
	pick := func(xs ...float64) float64 { return xs[w.rng.IntN(len(xs))] }
	// Drawn apart from the schedule's stream, so that a schedule without serving is the one the
	// same seed gave before serving was explored.
	var mode servingMode
	switch r := rand.New(rand.NewPCG(w.seed, servingStream)).IntN(100); {
	case r < servingShare*3/4:
		mode = canaryServing
	case r < servingShare:
		mode = replaceServing
	}
	return params{
		serving:   mode,
		models:    1 + w.rng.IntN(2),
		managers:  1 + w.rng.IntN(2),
		userSteps: 10 + w.rng.IntN(31),
		faults: faults{
			write:  pick(0, 0.05, 0.15, 0.3),
			commit: pick(0, 0, 0.05, 0.1),
			read:   pick(0, 0.05, 0.15),
			crash:  pick(0, 0, 0.01, 0.03),
		},
	}
}

// servingShare is the share of the schedules, in percent, whose models serve: three in four of
// them with canaries. servingStream seeds the draw of it.
const (
	servingShare  = 20
	servingStream = 0x5e41ce
)

// explore runs one random schedule: user actions, reconciles of the managers interleaved call by
// call, caches advancing independently per kind, faults and crashes; then the system settles
// and the final checks run.
func (w *world) explore(p params) {
	w.faults, w.serving = p.faults, p.serving
	cached := cachedKinds
	if w.serving != noServing {
		cached = servingKinds
	}
	names := modelNames[:p.models]
	ms := make([]*manager, 0, p.managers)
	for i := range p.managers {
		ms = append(ms, w.newManager(fmt.Sprintf("m%d", i+1)))
		ms[i].cache.fresh = p.fresh
	}
	userLeft, tail := p.userSteps, 40
	if w.serving != noServing {
		tail = 120 // time for canaries to run their steps under the faults
	}
	for len(w.violations) == 0 && (userLeft > 0 || tail > 0) {
		if userLeft == 0 {
			tail--
		}
		if p.faults.crash > 0 && w.rng.Float64() < p.faults.crash {
			w.crash(ms[w.rng.IntN(len(ms))], w.rng.IntN(2) == 0)
			continue
		}
		if w.serving != noServing && w.servingStep() {
			continue
		}
		r := w.rng.IntN(100)
		switch {
		case userLeft > 0 && r < 14:
			userLeft--
			w.randomUserAction(names)
		case r < 34:
			m, k := ms[w.rng.IntN(len(ms))], cached[w.rng.IntN(len(cached))]
			n := 1 + w.rng.IntN(3)
			if w.rng.IntN(5) == 0 {
				n = m.cache.lag(k)
			}
			if got := m.cache.advance(k, n); got > 0 {
				w.tracef("%s: cache of %s advances %d event(s), %d behind", m.name, k, got, m.cache.lag(k))
			}
		case r < 52:
			if idle := filter(ms, func(m *manager) bool { return m.run == nil }); len(idle) > 0 {
				w.start(idle[w.rng.IntN(len(idle))], names[w.rng.IntN(len(names))])
			}
		default:
			if busy := filter(ms, func(m *manager) bool { return m.run != nil }); len(busy) > 0 {
				w.step(busy[w.rng.IntN(len(busy))])
			}
		}
	}
	w.stopAll()
	if len(w.violations) == 0 {
		w.settle(names)
	}
}

func filter(ms []*manager, keep func(*manager) bool) []*manager {
	var out []*manager
	for _, m := range ms {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// stopAll abandons every reconcile in flight: its next call is not made.
func (w *world) stopAll() {
	for _, m := range w.managers {
		if r := m.run; r != nil {
			w.tracef("%s: stops", m.name)
			r.resume <- resume{crash: true}
			for rep := <-r.report; !rep.done; rep = <-r.report {
			}
			m.run = nil
		}
	}
	w.measurements = nil
}

// maxSettleRounds bounds the reconciles a model needs to converge once faults stop.
const maxSettleRounds = 30

// settle stops faults and crashes, lets one manager with a fresh cache reconcile every model
// until a reconcile writes nothing, and runs the final checks.
func (w *world) settle(names []string) {
	w.faults, w.rules = faults{}, nil
	w.tracef("--- faults and crashes stop; a fresh manager settles every model ---")
	rounds, quiet := maxSettleRounds, 1
	if w.serving != noServing {
		// A canary takes a reconcile per measurement; a quiet round may only wait for the next.
		rounds, quiet = maxServingSettleRounds, 3
		w.releaseHolds(names)
		w.collectGarbage()
	}
	f := w.newManager("final")
	f.cache.fresh = true
	for _, name := range names {
		converged := false
		for calm, left := 0, rounds; left > 0; left-- {
			w.start(f, name)
			writes, err := w.finish(f)
			if len(w.violations) > 0 {
				return
			}
			if w.answerAll()+w.playDeployments() > 0 || writes > 0 || err != nil {
				calm = 0
				continue
			}
			if calm++; calm == quiet {
				converged = true
				break
			}
		}
		if !converged {
			w.violate(noConvergence, "model %s did not converge in the reconciles allowed without faults", name)
			return
		}
	}
	for range 2 {
		for _, name := range names {
			w.start(f, name)
			writes, err := w.finish(f)
			if others := w.answerAll() + w.playDeployments(); writes > 0 || err != nil || others > 0 {
				w.violate(convergedWrites, "a converged reconcile of %s made %d writes (error: %v), and %d measurements "+
					"or Deployment statuses followed", name, writes, err, others)
			}
		}
	}
	w.checkFinal(names)
}

// maxServingSettleRounds bounds the reconciles of all the models of a schedule with serving
// once faults stop: a canary's steps take a measurement each interval.
const maxServingSettleRounds = 200

// releaseHolds has a person remove the pause annotation of every model before the end: a held
// canary never ends.
func (w *world) releaseHolds(names []string) {
	for _, name := range names {
		if m := w.srv.model(name); m != nil && m.Annotations[mlv1.AnnotationPauseRollout] != "" {
			w.user("resumes the canary of %s before the end", name)
			w.annotate(models, name, mlv1.AnnotationPauseRollout, "")
		}
	}
}

// checkFinal checks the settled state on the server.
func (w *world) checkFinal(names []string) {
	w.checkDeletions()
	w.checkVersionDeletions()
	for _, name := range names {
		vs := w.srv.versionsOf(name)
		m := w.srv.model(name)
		w.checkVersionFinalizers(m, vs)
		if m != nil && m.DeletionTimestamp != nil {
			w.violate(stuckTerminating, "model %s was deleted at %s and is still there, with finalizers %v",
				name, m.DeletionTimestamp, m.Finalizers)
			continue
		}
		if m == nil {
			for _, v := range vs {
				c := meta.FindStatusCondition(v.Status.Conditions, mlv1.ConditionReady)
				if c == nil || c.Reason != mlv1.ReasonModelNotFound {
					w.violate(orphanStatus, "%s: its model %s does not exist, but its Ready condition does not say so: %v",
						v.Name, name, c)
				}
			}
			continue
		}
		// (2) the model's Production version is the only version that says Production.
		var production []*mlv1.ModelVersion
		for _, v := range vs {
			if v.Status.Stage == mlv1.StageProduction {
				production = append(production, v)
			}
		}
		switch {
		case m.Status.ProductionVersion == nil && len(production) > 0:
			w.violate(productionMismatch, "model %s records no Production version, but %s says Production",
				name, production[0].Name)
		case m.Status.ProductionVersion != nil &&
			(len(production) != 1 || production[0].Spec.Version != *m.Status.ProductionVersion):
			got := make([]string, 0, len(production))
			for _, v := range production {
				got = append(got, v.Name)
			}
			w.violate(productionMismatch, "model %s records Production %d, but the versions that say Production are %v", name,
				*m.Status.ProductionVersion, got)
		}
		w.checkServing(m)
		// (3) every request was acted on, or a condition says why not.
		for _, v := range vs {
			w.checkRequest(v)
		}
		// (4) every version's stage is the model's decision.
		d := promotion.Decide(input(m, vs))
		w.checkStaging(m, vs, d)
		if !sameNumber(d.Production, m.Status.ProductionVersion) {
			w.violate(notDecided, "model %s records Production %s, but its decision is %s", name,
				optional(m.Status.ProductionVersion), optional(d.Production))
		}
		for _, v := range vs {
			if want := d.Versions[v.Name].Stage; v.Status.Stage != want {
				w.violate(notDecided, "%s says %q, but the decision of model %s is %q", v.Name, v.Status.Stage, name, want)
			}
		}
	}
}

// checkDeletions checks that every model deleted with history has, as its last StageRecord, the
// record of its deletion: a transition after the last of its history, to None, reason ModelDeleted.
func (w *world) checkDeletions() {
	for _, m := range w.srv.deletedWithHistory {
		var last *mlv1.StageRecord
		for _, o := range w.srv.live[records] {
			if r := o.(*mlv1.StageRecord); r.Model.UID == string(m.UID) &&
				(last == nil || r.Transition.Sequence > last.Transition.Sequence) {
				last = r
			}
		}
		switch {
		case last == nil:
			w.violate(deletionUnrecorded, "model %s (%s) was deleted with %d history entries and has no StageRecord",
				m.Name, m.UID, len(m.Status.History))
		case last.Transition.Reason != mlv1.ReasonModelDeleted || last.Transition.To != mlv1.StageNone ||
			last.Transition.Sequence <= m.Status.History[len(m.Status.History)-1].Sequence:
			t := last.Transition
			w.violate(deletionUnrecorded, "model %s (%s) was deleted, and its last StageRecord is transition %d, "+
				"%s -> %s (%s), after history entry %d", m.Name, m.UID, t.Sequence, t.From, t.To, t.Reason,
				m.Status.History[len(m.Status.History)-1].Sequence)
		}
	}
}

// checkVersionDeletions checks that every deleted version that carried the finalizer as its
// model's Production version is gone, and that the history entry retiring it names whoever
// marked it (nobody, when it was not marked), in the model's status or its StageRecords.
func (w *world) checkVersionDeletions() {
	for _, d := range w.srv.deletedProduction {
		if v := w.srv.version(d.name); v != nil && string(v.UID) == d.uid {
			w.violate(stuckTerminating, "version %s was deleted at %s and is still there, with finalizers %v",
				d.name, v.DeletionTimestamp, v.Finalizers)
			continue
		}
		m := w.srv.model(d.model)
		if m == nil || string(m.UID) != d.modelUID {
			continue // the model went too: its own deletion is its record (checkDeletions)
		}
		entries := slices.Clone(m.Status.History)
		for _, o := range w.srv.live[records] {
			if r := o.(*mlv1.StageRecord); r.Model.UID == d.modelUID {
				entries = append(entries, r.Transition)
			}
		}
		i := slices.IndexFunc(entries, func(e mlv1.HistoryEntry) bool {
			return e.VersionUID == d.uid && e.Reason == mlv1.ReasonDeleted
		})
		switch {
		case i < 0:
			w.violate(versionDeletionUnattributed, "Production version %s of %s was deleted, and no history entry says so",
				d.name, d.model)
		case entries[i].By != d.by:
			w.violate(versionDeletionUnattributed, "Production version %s of %s was deleted marked by %q, and the history "+
				"says by %q", d.name, d.model, d.by, entries[i].By)
		}
	}
}

// checkVersionFinalizers checks that of a settled model's versions, its Production version alone
// carries the operator's finalizer; none does when the model is gone.
func (w *world) checkVersionFinalizers(m *mlv1.RegisteredModel, vs []*mlv1.ModelVersion) {
	for _, v := range vs {
		want := m != nil && m.Status.ProductionVersion != nil && m.Status.ProductionVersionUID == string(v.UID)
		if has := controllerutil.ContainsFinalizer(v, mlv1.FinalizerStageRecords); has != want {
			w.violate(versionFinalizer, "%s carries the finalizer %s: %v; it is its model's Production version: %v",
				v.Name, mlv1.FinalizerStageRecords, has, want)
		}
	}
}

func sameNumber(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func (w *world) checkRequest(v *mlv1.ModelVersion) {
	switch v.Spec.Stage {
	case mlv1.StageProduction, mlv1.StageArchived, mlv1.StageStaging:
	default:
		return
	}
	if v.Status.ObservedStageRequest == v.Spec.Stage {
		return
	}
	for _, t := range []string{mlv1.ConditionReady, mlv1.ConditionStalled} {
		c := meta.FindStatusCondition(v.Status.Conditions, t)
		if c == nil {
			continue
		}
		if c.Reason == mlv1.ReasonDuplicateVersion || c.Reason == mlv1.ReasonModelNotFound ||
			strings.Contains(c.Message, string(v.Spec.Stage)) && strings.Contains(c.Message, "request") {
			return
		}
	}
	w.violate(requestUnanswered,
		"%s asks for %s, observedStageRequest is %q, and no condition says why the request was not acted on",
		v.Name, v.Spec.Stage, v.Status.ObservedStageRequest)
}

// input is the promotion rules' input for a model and its versions, as the reconciler builds it.
func input(m *mlv1.RegisteredModel, vs []*mlv1.ModelVersion) promotion.Input {
	in := promotion.Input{
		Policy:     m.Spec.Promotion,
		Canary:     canaryOf(m) != nil,
		Production: m.Status.ProductionVersion,
		Floor:      m.Status.AutomaticPromotionFloor,
		History:    m.Status.History,
	}
	for _, v := range vs {
		in.Versions = append(in.Versions, promotion.Version{
			Name:            v.Name,
			Number:          v.Spec.Version,
			Metrics:         v.Spec.Metrics,
			Request:         v.Spec.Stage,
			ObservedRequest: v.Status.ObservedStageRequest,
			Stage:           v.Status.Stage,
			Generation:      v.Generation,
		})
	}
	slices.SortStableFunc(in.Versions, func(a, b promotion.Version) int {
		if a.Number != b.Number {
			return int(a.Number - b.Number)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return in
}
