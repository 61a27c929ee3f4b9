package promotion

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// --- fixture builders ---

func num(s string) *mlv1.Number { n := mlv1.Number(s); return &n }

func gate(metric, lo, hi string) mlv1.Gate {
	g := mlv1.Gate{Metric: metric}
	if lo != "" {
		g.Min = num(lo)
	}
	if hi != "" {
		g.Max = num(hi)
	}
	return g
}

// seedPolicy is the seed system's rule: promote when test_accuracy >= 0.85.
func seedPolicy() mlv1.Promotion {
	return mlv1.Promotion{Mode: mlv1.PromotionAutomatic, Gates: []mlv1.Gate{gate("test_accuracy", "0.85", "")}}
}

func version(n int64, accuracy string) Version {
	name := fmt.Sprintf("m-%d", n)
	v := Version{Name: name, UID: "uid-" + name, Number: n, Generation: 1, Metrics: map[string]mlv1.Number{}}
	if accuracy != "" {
		v.Metrics["test_accuracy"] = mlv1.Number(accuracy)
	}
	return v
}

// requestingProduction is v registered with spec.stage: Production in its manifest.
func requestingProduction(v Version) Version { v.Request = mlv1.StageProduction; return v }

// world plays the controller's part around Decide: it records each decision the way the
// controller writes it to the RegisteredModel's and the ModelVersions' status.
type world struct {
	policy        mlv1.Promotion
	modelUID      string
	production    *int64
	productionUID string
	floor, latest int64
	history       []mlv1.HistoryEntry
	versions      []Version
	// failedRollout, when set, is reported to the next reconcile, as the Deployment would.
	failedRollout *int64
	// canary rolls new versions out as candidates; candidate is the one recorded, and verdict,
	// when set, is its analysis' verdict for the next reconcile.
	canary    bool
	candidate *Candidate
	verdict   string // "passed" or "failed"
	handled   []mlv1.HandledRequest
	// deletedBy is who marked the deleted Production version, for the next reconcile.
	deletedBy string
}

func (w *world) add(vs ...Version) { w.versions = append(w.versions, vs...) }

func (w *world) find(name string) *Version {
	for i := range w.versions {
		if w.versions[i].Name == name {
			return &w.versions[i]
		}
	}
	return nil
}

// request changes spec.stage on a registered version, as kubectl patch does.
func (w *world) request(name string, stage mlv1.Stage) {
	v := w.find(name)
	v.Request = stage
	v.Generation++
}

func (w *world) reconcile(t *testing.T) Decision {
	t.Helper()
	in := Input{Policy: w.policy, ModelUID: w.modelUID, Production: w.production, ProductionUID: w.productionUID,
		Floor: w.floor, Latest: w.latest, History: w.history, Versions: slices.Clone(w.versions), Canary: w.canary,
		Handled: w.handled, DeletedBy: w.deletedBy}
	w.deletedBy = ""
	if w.failedRollout != nil {
		in.Failed = &Failure{Version: *w.failedRollout, Reason: mlv1.ReasonRolloutFailed, Message: "Its rollout missed the progress deadline"}
	}
	if c := w.candidate; c != nil {
		rec := *c
		rec.Passed, rec.Failed, rec.Message = w.verdict == "passed", w.verdict == "failed", "the analysis says "+w.verdict
		in.Candidate = &rec
	}
	d := Decide(in)
	w.failedRollout, w.candidate, w.verdict = nil, d.Candidate, ""
	w.production, w.productionUID, w.floor, w.handled = d.Production, d.ProductionUID, d.Floor, d.Handled
	if d.Latest != nil {
		w.latest = *d.Latest
	}
	w.history = AppendHistory(w.history, d.Transitions, time.Unix(0, 0), mlv1.DefaultHistoryLimit)
	for i := range w.versions {
		vd := d.Versions[w.versions[i].Name]
		w.versions[i].Stage, w.versions[i].ObservedRequest = vd.Stage, vd.ObservedRequest
		w.versions[i].ObservedRequestID = vd.ObservedRequestID
		w.versions[i].ModelUID = w.modelUID
	}
	productions := 0
	for _, v := range w.versions {
		if v.Stage == mlv1.StageProduction {
			productions++
		}
	}
	if productions > 1 {
		t.Fatalf("two Production versions: %v", w.stages())
	}
	return d
}

func (w *world) stages() string {
	parts := make([]string, 0, len(w.versions))
	for _, v := range w.versions {
		parts = append(parts, fmt.Sprintf("%s=%s", v.Name, v.Stage))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func expectStages(t *testing.T, w *world, want string) {
	t.Helper()
	if got := w.stages(); got != want {
		t.Fatalf("stages:\n got %s\nwant %s", got, want)
	}
}

// --- gates ---

func TestEvaluateGates(t *testing.T) {
	tests := []struct {
		name    string
		gates   []mlv1.Gate
		metrics map[string]mlv1.Number
		passed  bool
		reason  string
		message string
	}{
		{"the seed's v2 below the gate fails with the numbers", []mlv1.Gate{gate("test_accuracy", "0.85", "")},
			map[string]mlv1.Number{"test_accuracy": "0.8203"}, false, mlv1.ReasonGateFailed, "test_accuracy 0.8203 < 0.85"},
		{"a value equal to min passes", []mlv1.Gate{gate("test_accuracy", "0.85", "")},
			map[string]mlv1.Number{"test_accuracy": "0.850"}, true, mlv1.ReasonAllGatesPassed, "test_accuracy 0.850 >= 0.85"},
		{"max is an upper bound", []mlv1.Gate{gate("overfitting", "", "0.05")},
			map[string]mlv1.Number{"overfitting": "0.0501"}, false, mlv1.ReasonGateFailed, "overfitting 0.0501 > 0.05"},
		{"exact decimals: 0.1+0.2 style rounding never flips a gate", []mlv1.Gate{gate("m", "0.3", "")},
			map[string]mlv1.Number{"m": "0.30000000000000000001"}, true, mlv1.ReasonAllGatesPassed, "m 0.30000000000000000001 >= 0.3"},
		{"a missing metric fails and says which", []mlv1.Gate{gate("test_accuracy", "0.85", ""), gate("overfitting", "", "0.05")},
			map[string]mlv1.Number{"test_accuracy": "0.9"}, false, mlv1.ReasonMetricMissing, "overfitting is missing; the gate overfitting <= 0.05 needs it"},
		{"the first failure names the reason", []mlv1.Gate{gate("a", "1", ""), gate("b", "1", "")},
			map[string]mlv1.Number{"a": "0"}, false, mlv1.ReasonGateFailed, "a 0 < 1; b is missing; the gate b >= 1 needs it"},
		{"no gates pass everything", nil, nil, true, mlv1.ReasonNoGates, "The model has no gates"},
		{"min and max together", []mlv1.Gate{gate("m", "1", "2")},
			map[string]mlv1.Number{"m": "2.5"}, false, mlv1.ReasonGateFailed, "m 2.5 > 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EvaluateGates(tt.gates, tt.metrics)
			if got.Passed != tt.passed || got.Reason != tt.reason || got.Message != tt.message {
				t.Fatalf("got (%v, %s, %q), want (%v, %s, %q)", got.Passed, got.Reason, got.Message, tt.passed, tt.reason, tt.message)
			}
			if len(got.Results) != len(tt.gates) {
				t.Fatalf("got %d gate results, want %d", len(got.Results), len(tt.gates))
			}
		})
	}
}

// --- the rules ---

func TestSeedScenarioInOrder(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(2, "0.8203"))
	w.reconcile(t)
	expectStages(t, w, "m-2=None")
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Production")
	w.add(version(4, "0.8723"))
	d := w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Archived m-4=Production")
	if len(d.Transitions) != 2 || d.Transitions[0].From != mlv1.StageProduction || d.Transitions[1].To != mlv1.StageProduction {
		t.Fatalf("transitions must leave Production before entering it: %+v", d.Transitions)
	}
	if d.Transitions[0].Reason != mlv1.ReasonSuperseded || d.Transitions[1].Reason != mlv1.ReasonGatesPassed {
		t.Fatalf("reasons: %+v", d.Transitions)
	}
}

func TestSeedScenarioGivesOneResultInEveryOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	all := []Version{version(2, "0.8203"), version(3, "0.8512"), version(4, "0.8723")}
	for range 200 {
		order := slices.Clone(all)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		w := &world{policy: seedPolicy()}
		// arrive in random batches, with a reconcile after each
		for len(order) > 0 {
			k := 1 + rng.IntN(len(order))
			w.add(order[:k]...)
			order = order[k:]
			w.reconcile(t)
		}
		expectStages(t, w, "m-2=None m-3=Archived m-4=Production")
	}
}

func TestLowerVersionNeverDisplacesAutomaticHigher(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(4, "0.8723"))
	w.reconcile(t)
	w.add(version(3, "0.99"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Production")
}

func TestRollbackByRequest(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(2, "0.8203"), version(3, "0.8512"), version(4, "0.8723"))
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	d := w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Production m-4=Archived")
	if d.Transitions[0].Reason != mlv1.ReasonRolledBack || d.Transitions[1].Reason != mlv1.ReasonRollback {
		t.Fatalf("reasons: %+v", d.Transitions)
	}
	// a converged world decides nothing new
	if d := w.reconcile(t); len(d.Transitions) != 0 {
		t.Fatalf("a second reconcile changed stages: %+v", d.Transitions)
	}
	// the rolled-back-from version is not promoted again by the automatic rule
	w.find("m-4").Metrics["test_accuracy"] = "0.95"
	w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Production m-4=Archived")
	// the newest event wins: a later version that passes is promoted over the rollback
	w.add(version(5, "0.88"))
	w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Archived m-4=Archived m-5=Production")
	// and v3's standing request is not acted on a second time
	w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Archived m-4=Archived m-5=Production")
}

func TestANewStageRequestIDAsksForTheSameStageAgain(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(3, "0.8512"), version(4, "0.8723"))
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	w.add(version(5, "0.88"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")

	// spec.stage stays Production: only a new ID makes it a request again, in one write.
	reRequest := func(id string) Decision {
		v := w.find("m-3")
		v.RequestID = id
		v.Generation++
		return w.reconcile(t)
	}
	if d := reRequest("r1"); len(d.Transitions) != 2 || d.Transitions[1].Reason != mlv1.ReasonRollback {
		t.Fatalf("a new ID did not roll back to version 3: %+v", d.Transitions)
	}
	expectStages(t, w, "m-3=Production m-4=Archived m-5=Archived")
	w.add(version(6, "0.89"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Archived m-6=Production")
	if d := w.reconcile(t); len(d.Transitions) != 0 {
		t.Fatalf("the same ID, seen again (a GitOps sync re-applies it), was acted on again: %+v", d.Transitions)
	}
	if d := reRequest(""); len(d.Transitions) != 0 {
		t.Fatalf("removing the ID asks for nothing, but was acted on: %+v", d.Transitions)
	}
	if w.find("m-3").ObservedRequestID != "" {
		t.Fatal("the status does not follow the ID's removal")
	}
	if d := reRequest("r1"); len(d.Transitions) != 2 {
		t.Fatalf("an ID written again after its removal is a new request: %+v", d.Transitions)
	}
	expectStages(t, w, "m-3=Production m-4=Archived m-5=Archived m-6=Archived")
}

func TestRollbackToVersionWhoseGatesFail(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(2, "0.8203"), version(4, "0.8723"))
	w.reconcile(t)
	w.request("m-2", mlv1.StageProduction)
	d := w.reconcile(t)
	expectStages(t, w, "m-2=Production m-4=Archived")
	last := d.Transitions[len(d.Transitions)-1]
	if !strings.Contains(last.Message, "its gates do not pass (test_accuracy 0.8203 < 0.85)") {
		t.Fatalf("the history must say the gates fail: %q", last.Message)
	}
}

func TestRequestingTheSameStageAgainNeedsAChange(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(3, "0.8512"), version(4, "0.8723"))
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	w.add(version(5, "0.9"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")
	w.request("m-3", "")
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived m-5=Archived")
}

func TestManualModeWaitsInStaging(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.policy.Mode = mlv1.PromotionManual
	w.add(version(2, "0.8203"), version(3, "0.8512"), version(4, "0.8723"))
	w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Staging m-4=Staging")
	w.request("m-3", mlv1.StageProduction)
	d := w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Production m-4=Staging")
	if d.Transitions[0].Reason != mlv1.ReasonManualRequest {
		t.Fatalf("reason: %+v", d.Transitions)
	}
	w.request("m-4", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-2=None m-3=Archived m-4=Production")
}

func TestArchivingProductionRestoresThePreviousOne(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.add(version(4, "0.8723"))
	w.reconcile(t)
	w.request("m-4", mlv1.StageArchived)
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived")
	if d.Transitions[0].Reason != mlv1.ReasonArchiveRequest || d.Transitions[1].Reason != mlv1.ReasonRestored {
		t.Fatalf("reasons: %+v", d.Transitions)
	}
	// retiring the restored one too leaves no Production, and nothing older is promoted automatically
	w.request("m-3", mlv1.StageArchived)
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived")
	if w.production != nil {
		t.Fatalf("production = %d, want none", *w.production)
	}
	// a newer version is promoted as usual
	w.add(version(5, "0.9"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")
}

func TestStagingRequestUnarchives(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.policy.Mode = mlv1.PromotionManual
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.request("m-3", mlv1.StageArchived)
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived")
	w.request("m-3", mlv1.StageStaging)
	w.reconcile(t)
	expectStages(t, w, "m-3=Staging")
}

func TestDuplicatesAreNeverPromoted(t *testing.T) {
	w := &world{policy: seedPolicy()}
	a, b := version(4, "0.9"), version(4, "0.95")
	b.Name = "m-4-copy"
	w.add(a, b)
	w.reconcile(t)
	expectStages(t, w, "m-4-copy=None m-4=None")
	if w.production != nil {
		t.Fatal("a duplicated number became Production")
	}
	// a request on a duplicate waits
	w.request("m-4", mlv1.StageProduction)
	d := w.reconcile(t)
	if w.production != nil || !strings.Contains(d.Versions["m-4"].Note, "claimed by more than one") {
		t.Fatalf("request on a duplicate was acted on: %+v", d.Versions["m-4"])
	}
	// once the copy is deleted, the request is acted on
	w.versions = slices.DeleteFunc(w.versions, func(v Version) bool { return v.Name == "m-4-copy" })
	w.reconcile(t)
	expectStages(t, w, "m-4=Production")
}

func TestDuplicateOfProductionKeepsTheOriginal(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(4, "0.9"))
	w.reconcile(t)
	copyV := version(4, "0.99")
	copyV.Name, copyV.UID = "m-4-copy", "uid-m-4-copy"
	w.add(copyV)
	w.reconcile(t)
	expectStages(t, w, "m-4-copy=None m-4=Production")
	w.add(version(5, "0.91"))
	w.reconcile(t)
	expectStages(t, w, "m-4-copy=None m-4=Archived m-5=Production")
}

func TestRequireImprovement(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.policy.RequireImprovement = &mlv1.Improvement{Metric: "test_accuracy", MinDelta: num("0.01")}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.add(version(4, "0.8600"))
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Staging")
	if d.Versions["m-4"].Note != "test_accuracy 0.8600 does not improve on Production's 0.8512 by at least 0.01" {
		t.Fatalf("note: %q", d.Versions["m-4"].Note)
	}
	w.add(version(5, "0.8723"))
	w.reconcile(t)
	// v4 is now older than the Production version: it can never be promoted automatically
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")
}

func TestRequireImprovementLowerIsBetter(t *testing.T) {
	w := &world{policy: mlv1.Promotion{
		Gates:              []mlv1.Gate{gate("loss", "", "1")},
		RequireImprovement: &mlv1.Improvement{Metric: "loss", Direction: mlv1.LowerIsBetter},
	}}
	a, b := version(1, ""), version(2, "")
	a.Metrics["loss"], b.Metrics["loss"] = "0.5", "0.6"
	w.add(a)
	w.reconcile(t)
	w.add(b)
	w.reconcile(t)
	expectStages(t, w, "m-1=Production m-2=Staging")
}

func TestRequestInTheRegistrationManifest(t *testing.T) {
	t.Run("a newer version registered together wins over it", func(t *testing.T) {
		w := &world{policy: seedPolicy()}
		w.add(requestingProduction(version(3, "0.8512")), version(4, "0.8723"))
		w.reconcile(t)
		expectStages(t, w, "m-3=Archived m-4=Production")
	})
	t.Run("it stands whatever arrived first", func(t *testing.T) {
		w := &world{policy: seedPolicy()}
		w.add(version(4, "0.8723"))
		w.reconcile(t)
		w.add(requestingProduction(version(3, "0.8512")))
		w.reconcile(t)
		expectStages(t, w, "m-3=Archived m-4=Production")
	})
	t.Run("the newest version's request wins", func(t *testing.T) {
		w := &world{policy: seedPolicy()}
		w.add(version(3, "0.8512"), requestingProduction(version(5, "0.80")), version(4, "0.8723"))
		w.reconcile(t)
		expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")
	})
}

// remove deletes a ModelVersion object.
func (w *world) remove(name string) {
	w.versions = slices.DeleteFunc(w.versions, func(v Version) bool { return v.Name == name })
}

// recreateModel deletes the RegisteredModel and creates it again with policy: a new object,
// with a new UID and an empty status; the versions keep what the old model decided.
func (w *world) recreateModel(policy mlv1.Promotion) {
	w.policy, w.modelUID = policy, w.modelUID+"-again"
	w.production, w.productionUID, w.floor, w.latest, w.history = nil, "", 0, 0, nil
}

func TestARecreatedModelDoesNotInheritProduction(t *testing.T) {
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"), version(4, "0.8723"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Production")

	manual := seedPolicy()
	manual.Mode = mlv1.PromotionManual
	w.recreateModel(manual)
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Staging m-4=Staging")
	if d.Production != nil {
		t.Fatalf("the new Manual model adopted version %d", *d.Production)
	}

	strict := seedPolicy()
	strict.Gates = []mlv1.Gate{gate("test_accuracy", "0.86", "")}
	w.recreateModel(strict)
	w.reconcile(t)
	expectStages(t, w, "m-3=None m-4=Production")
	strict.Gates = []mlv1.Gate{gate("test_accuracy", "0.9", "")}
	w.recreateModel(strict)
	w.reconcile(t)
	expectStages(t, w, "m-3=None m-4=None")
}

func TestDeletingTheProductionVersionRetiresIt(t *testing.T) {
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.add(version(4, "0.8723"))
	w.reconcile(t)
	w.remove("m-4")
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Production")
	if len(d.Transitions) != 2 || d.Transitions[0].Version != 4 || d.Transitions[0].Reason != mlv1.ReasonDeleted ||
		d.Transitions[1].Reason != mlv1.ReasonRestored {
		t.Fatalf("transitions: %+v", d.Transitions)
	}
	if d.Transitions[0].By != "" || d.Transitions[1].By != "" {
		t.Fatalf("the operator did not delete the version, and nothing says who did: by %q, %q",
			d.Transitions[0].By, d.Transitions[1].By)
	}
	if w.productionUID != "uid-m-3" {
		t.Fatalf("the model records UID %q", w.productionUID)
	}

	t.Run("another object that claims the number later is a new version", func(t *testing.T) {
		impostor := version(4, "0.5")
		impostor.Name, impostor.UID = "m-4-again", "uid-m-4-again"
		w.add(impostor)
		w.reconcile(t)
		expectStages(t, w, "m-3=Production m-4-again=None")

		w.request("m-4-again", mlv1.StageProduction)
		w.reconcile(t)
		expectStages(t, w, "m-3=Archived m-4-again=Production")
		if w.productionUID != "uid-m-4-again" {
			t.Fatalf("the model records UID %q for version 4", w.productionUID)
		}
	})
}

func TestAMarkedDeletionOfTheProductionVersionNamesWhoMarkedIt(t *testing.T) {
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.add(version(4, "0.8723"))
	w.reconcile(t)
	w.remove("m-4")
	w.deletedBy = "alice"
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Production")
	if len(d.Transitions) != 2 || d.Transitions[0].Reason != mlv1.ReasonDeleted || d.Transitions[0].By != "alice" ||
		d.Transitions[1].Reason != mlv1.ReasonRestored || d.Transitions[1].By != "alice" {
		t.Fatalf("the deletion and the restoration it caused are alice's: %+v", d.Transitions)
	}
	if want := "Its ModelVersion was deleted (by alice, who marked it for deletion); version 3, the previous " +
		"Production version, was restored"; d.Transitions[0].Message != want {
		t.Fatalf("message %q, want %q", d.Transitions[0].Message, want)
	}
}

func TestADuplicateDoesNotInheritADeletedProductionVersion(t *testing.T) {
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.add(version(4, "0.8723"))
	w.reconcile(t)
	twin := version(4, "0.99")
	twin.Name, twin.UID = "m-4-twin", "uid-m-4-twin"
	w.add(twin)
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4-twin=None m-4=Production")
	w.remove("m-4")
	w.reconcile(t)
	// Version 4 was deleted: the twin, now the only version 4, is not the version that was
	// promoted, and is not newer than the deletion: it waits in Staging for a request.
	expectStages(t, w, "m-3=Production m-4-twin=Staging")
}

func TestDeletingTheNewestVersionKeepsRequestsInOrder(t *testing.T) {
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"), version(4, "0.8723"), version(5, "0.88"))
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived m-5=Archived")
	w.remove("m-5")
	w.reconcile(t)
	w.request("m-4", mlv1.StageProduction)
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Production")
	if d.Latest == nil || *d.Latest != 5 {
		t.Fatalf("the newest version ever registered is %v, want 5", d.Latest)
	}
}

func TestAManifestRequestAfterAFailedRolloutWithNothingToRestore(t *testing.T) {
	for _, together := range []bool{true, false} {
		t.Run(fmt.Sprintf("seen in the same reconcile as the failure: %v", together), func(t *testing.T) {
			w := &world{policy: seedPolicy(), modelUID: "model"}
			w.add(version(3, "0.8512"))
			w.reconcile(t)
			w.failedRollout = new(int64(3))
			if !together {
				w.reconcile(t)
				expectStages(t, w, "m-3=Archived")
			}
			w.add(requestingProduction(version(2, "0.86")))
			d := w.reconcile(t) // used to panic on the missing Production version
			expectStages(t, w, "m-2=Staging m-3=Archived")
			if note := d.Versions["m-2"].RequestNote; !strings.Contains(note, "request Production again") {
				t.Fatalf("the request's fate is not explained: %q", note)
			}
		})
	}
}

func TestLongHistoryMessagesAreShortened(t *testing.T) {
	policy := mlv1.Promotion{Mode: mlv1.PromotionAutomatic}
	full := map[string]mlv1.Number{}
	for i := range 16 {
		metric := fmt.Sprintf("%s_%02d", strings.Repeat("a_very_long_metric_name_", 2), i)
		policy.Gates = append(policy.Gates, gate(metric, "0.5", ""))
		full[metric] = "0.9"
	}
	w := &world{policy: policy, modelUID: "model"}
	v3, v4 := version(3, ""), version(4, "")
	v4.Metrics = full
	w.add(v3, v4)
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction) // a rollback to a version that lacks every metric
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived")
	for _, h := range w.history {
		if n := utf8.RuneCountInString(h.Message); n > mlv1.MaxHistoryMessage {
			t.Fatalf("a history message has %d characters, more than the API allows", n)
		}
	}
	if !strings.HasSuffix(d.Transitions[1].Message, "...") {
		t.Fatalf("the long message was not shortened: %q", d.Transitions[1].Message)
	}
}

func TestVersionNumbersUpToTheLargestAllowed(t *testing.T) {
	const largest = 1<<53 - 1
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"), version(largest, "0.8723"))
	w.reconcile(t)
	expectStages(t, w, fmt.Sprintf("m-3=Archived m-%d=Production", int64(largest)))
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, fmt.Sprintf("m-3=Production m-%d=Archived", int64(largest)))
}

// entries returns a history of n entries, of versions 1 to n.
func entries(n int) []mlv1.HistoryEntry {
	h := make([]mlv1.HistoryEntry, 0, n)
	for i := range n {
		h = append(h, mlv1.HistoryEntry{Version: int64(i + 1), To: mlv1.StageStaging})
	}
	return h
}

// staged returns n transitions of versions first, first+1, ... to Staging.
func staged(first, n int) []Transition {
	ts := make([]Transition, 0, n)
	for i := range n {
		ts = append(ts, Transition{Version: int64(first + i), To: mlv1.StageStaging})
	}
	return ts
}

func TestHistoryIsBoundedByTheModelsLimit(t *testing.T) {
	tests := []struct {
		name          string
		history       []mlv1.HistoryEntry
		transitions   []Transition
		limit         int
		first, length int64 // the oldest version kept, and how many entries
	}{
		{"below the limit nothing is dropped", entries(3), staged(4, 2), 10, 1, 5},
		{"exactly at the limit nothing is dropped", entries(8), staged(9, 2), 10, 1, 10},
		{"past the default limit the oldest are dropped", entries(100), staged(101, 50), mlv1.DefaultHistoryLimit, 51, 100},
		{"a custom limit keeps that many, newest last", entries(4), staged(5, 3), 5, 3, 5},
		{"a limit of one keeps only the newest transition", entries(4), staged(5, 2), 1, 6, 1},
		{"a raised limit keeps up to 500", entries(499), staged(500, 10), mlv1.MaxHistoryLimit, 10, 500},
		{"a lowered limit trims the history without a new transition", entries(100), nil, 20, 81, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.history)
			h := AppendHistory(tt.history, tt.transitions, time.Unix(0, 0), tt.limit)
			if int64(len(h)) != tt.length || h[0].Version != tt.first {
				t.Fatalf("history has %d entries from version %d, want %d from version %d", len(h), h[0].Version, tt.length, tt.first)
			}
			for i := 1; i < len(h); i++ {
				if h[i].Version != h[i-1].Version+1 {
					t.Fatalf("entry %d is version %d after version %d: not the newest, in order", i, h[i].Version, h[i-1].Version)
				}
			}
			if !slices.EqualFunc(before, tt.history, func(a, b mlv1.HistoryEntry) bool { return a.Version == b.Version }) {
				t.Fatal("AppendHistory changed the history it was given")
			}
		})
	}
}

func TestHistorySequencesCountEveryTransitionEverRecorded(t *testing.T) {
	tests := []struct {
		name    string
		history []mlv1.HistoryEntry
		limit   int
		want    []int64 // the sequences of the new entries
	}{
		{"a model's first transitions count from 1", nil, 10, []int64{1, 2}},
		{"new entries follow the newest one", []mlv1.HistoryEntry{{Sequence: 6}, {Sequence: 7}}, 10, []int64{8, 9}},
		{"trimming does not reuse a sequence", []mlv1.HistoryEntry{{Sequence: 41}}, 1, []int64{43}},
		{"after entries written without one, the count follows them", entries(3), 10, []int64{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := AppendHistory(tt.history, staged(1, 2), time.Unix(0, 0), tt.limit)
			var got []int64
			for _, e := range h[len(h)-min(len(h), 2):] {
				got = append(got, e.Sequence)
			}
			if !slices.Equal(got[len(got)-min(len(got), len(tt.want)):], tt.want) {
				t.Fatalf("sequences %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAChangeAlreadyInTheHistoryIsNotANewTransition(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	// The model's status was written, but the version's status write was lost.
	w.find("m-3").Stage = ""
	d := w.reconcile(t)
	if len(d.Transitions) != 0 || len(w.history) != 1 {
		t.Fatalf("the repeated change was recorded again: %+v, history %d", d.Transitions, len(w.history))
	}
	if d.Versions["m-3"].Stage != mlv1.StageProduction {
		t.Fatalf("the version's stage was not repaired: %s", d.Versions["m-3"].Stage)
	}
}

func TestFailedRolloutRestoresThePreviousVersion(t *testing.T) {
	w := &world{policy: seedPolicy()}
	w.add(version(3, "0.8512"))
	w.reconcile(t)
	w.add(version(4, "0.8723"))
	w.reconcile(t)
	w.failedRollout = new(int64(4))
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived")
	if d.Transitions[0].Reason != mlv1.ReasonRolloutFailed || d.Transitions[1].Reason != mlv1.ReasonRestored {
		t.Fatalf("reasons: %+v", d.Transitions)
	}
	// never again automatically, even when it would pass and nothing newer exists
	w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived")
	// a person may try it again
	w.request("m-4", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Production")
	// and a failure of a version that is no longer Production changes nothing
	w.failedRollout = new(int64(3))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Production")
}

// requestBy changes spec.stage as user, who the admission policy records as its requester.
func (w *world) requestBy(name string, stage mlv1.Stage, user string) {
	w.request(name, stage)
	w.find(name).RequestedBy = user
}

// byOf lists the transitions as "version:from->to:by".
func byOf(ts []Transition) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%d:%s->%s:%s", t.Version, t.From, t.To, t.By))
	}
	return out
}

func TestTransitionsSayWhoCausedThem(t *testing.T) {
	tests := []struct {
		name string
		// act registers and requests after versions 3 and 4 (0.8512, 0.8723) are decided.
		act  func(w *world)
		want []string
	}{
		{
			name: "a newer version that passes its gates is promoted by podium",
			act:  func(w *world) { w.add(version(5, "0.9")) },
			want: []string{"4:Production->Archived:podium", "5:->Production:podium"},
		},
		{
			name: "a rollback and the version it replaces are by the requester",
			act:  func(w *world) { w.requestBy("m-3", mlv1.StageProduction, "alice") },
			want: []string{"4:Production->Archived:alice", "3:Archived->Production:alice"},
		},
		{
			name: "a retirement and the restoration it causes are by the requester",
			act:  func(w *world) { w.requestBy("m-4", mlv1.StageArchived, "bob") },
			want: []string{"4:Production->Archived:bob", "3:Archived->Production:bob"},
		},
		{
			name: "a request whose author is unknown has no by",
			act:  func(w *world) { w.request("m-3", mlv1.StageProduction) },
			want: []string{"4:Production->Archived:", "3:Archived->Production:"},
		},
		{
			name: "a failed rollout is by podium",
			act:  func(w *world) { w.failedRollout = new(int64(4)) },
			want: []string{"4:Production->Archived:podium", "3:Archived->Production:podium"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{policy: seedPolicy()}
			w.add(version(3, "0.8512"))
			w.reconcile(t)
			w.add(version(4, "0.8723"))
			w.reconcile(t)
			tt.act(w)
			d := w.reconcile(t)
			if got := byOf(d.Transitions); !slices.Equal(got, tt.want) {
				t.Fatalf("transitions:\n got %v\nwant %v", got, tt.want)
			}
			for i, h := range w.history[len(w.history)-len(tt.want):] {
				if h.By != d.Transitions[i].By {
					t.Fatalf("history entry %d by %q, transition by %q", i, h.By, d.Transitions[i].By)
				}
			}
		})
	}
}

// canaryWorld is the seed's model with a canary rollout: v1 is Production.
func canaryWorld(t *testing.T, mode mlv1.PromotionMode) *world {
	t.Helper()
	w := &world{policy: seedPolicy(), modelUID: "model", canary: true}
	w.policy.Mode = mode
	v1 := version(1, "0.90")
	if mode == mlv1.PromotionManual {
		v1 = requestingProduction(v1)
	}
	w.add(v1)
	w.reconcile(t)
	if w.production == nil || *w.production != 1 {
		t.Fatalf("the first version goes straight to Production, there is nothing to share traffic with: %s", w.stages())
	}
	return w
}

func lastHistory(w *world) mlv1.HistoryEntry { return w.history[len(w.history)-1] }

func TestCanary(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode mlv1.PromotionMode
		act  func(t *testing.T, w *world)
		// production and candidate are the decision after act; 0 for none.
		production, candidate int64
		stages                string
		check                 func(t *testing.T, w *world)
	}{{
		name:       "v2 passing its gates becomes the candidate and v1 stays Production",
		act:        func(t *testing.T, w *world) { w.add(version(2, "0.91")) },
		production: 1, candidate: 2, stages: "m-1=Production m-2=Staging",
	}, {
		name: "the candidate that passes its analysis is promoted with the reason AnalysisPassed",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.verdict = "passed"
		},
		production: 2, stages: "m-1=Archived m-2=Production",
		check: func(t *testing.T, w *world) {
			if h := lastHistory(w); h.Version != 2 || h.Reason != mlv1.ReasonAnalysisPassed || h.Message != "the analysis says passed" {
				t.Errorf("history ends with %+v", h)
			}
			if w.floor != 2 {
				t.Errorf("floor %d, want 2: an automatic promotion", w.floor)
			}
		},
	}, {
		name: "the candidate that fails is Archived with the reason AnalysisFailed and never tried again automatically",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.verdict = "failed"
			w.reconcile(t)
		},
		production: 1, stages: "m-1=Production m-2=Archived",
		check: func(t *testing.T, w *world) {
			if h := lastHistory(w); h.Version != 2 || h.To != mlv1.StageArchived || h.Reason != mlv1.ReasonAnalysisFailed {
				t.Errorf("history ends with %+v", h)
			}
		},
	}, {
		name: "a Production request on a failed candidate starts a new rollout",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.verdict = "failed"
			w.reconcile(t)
			w.request("m-2", mlv1.StageProduction)
		},
		production: 1, candidate: 2, stages: "m-1=Production m-2=Staging",
		check: func(t *testing.T, w *world) {
			if w.candidate.Reason != mlv1.ReasonManualRequest {
				t.Errorf("candidate's reason %s, want ManualRequest", w.candidate.Reason)
			}
		},
	}, {
		name: "a newer version that passes replaces the candidate",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.add(version(3, "0.92"))
		},
		production: 1, candidate: 3, stages: "m-1=Production m-2=Staging m-3=Staging",
	}, {
		name: "a newer version that fails its gates leaves the candidate alone",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.add(version(3, "0.70"))
		},
		production: 1, candidate: 2, stages: "m-1=Production m-2=Staging m-3=None",
	}, {
		name: "a rollback to a version that was Production takes effect at once and ends the rollout",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.verdict = "passed"
			w.reconcile(t)
			w.add(version(3, "0.92"))
			w.reconcile(t)
			w.request("m-1", mlv1.StageProduction)
		},
		production: 1, stages: "m-1=Production m-2=Archived m-3=Staging",
	}, {
		name: "a version deleted and registered again under a number that served is a new bundle: it rolls out",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.verdict = "passed"
			w.reconcile(t) // 2 served
			w.add(version(3, "0.92"))
			w.reconcile(t)
			w.verdict = "passed"
			w.reconcile(t) // 3 serves, 2 Archived
			w.remove("m-2")
			w.reconcile(t)
			again := version(2, "0.93") // the only way to change an immutable artifact
			again.UID = "uid-m-2-again"
			w.add(again)
			w.reconcile(t)
			w.request("m-2", mlv1.StageProduction)
		},
		production: 3, candidate: 2, stages: "m-1=Archived m-2=Staging m-3=Production",
	}, {
		name: "a request with the skip-rollout annotation takes effect at once",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.request("m-2", mlv1.StageProduction)
			w.find("m-2").SkipRollout = true
		},
		production: 2, stages: "m-1=Archived m-2=Production",
	}, {
		name: "the skip-rollout annotation does nothing for an automatic promotion",
		act: func(t *testing.T, w *world) {
			v2 := version(2, "0.91")
			v2.SkipRollout = true
			w.add(v2)
		},
		production: 1, candidate: 2, stages: "m-1=Production m-2=Staging",
	}, {
		name: "in Manual mode the Production request is the approval that starts the rollout",
		mode: mlv1.PromotionManual,
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.request("m-2", mlv1.StageProduction)
		},
		production: 1, candidate: 2, stages: "m-1=Production m-2=Staging",
	}, {
		name: "a requested candidate that fails its gates still rolls out, and passes as requested",
		mode: mlv1.PromotionManual,
		act: func(t *testing.T, w *world) {
			w.add(requestingProduction(version(2, "0.70")))
			w.reconcile(t)
			w.verdict = "passed"
		},
		production: 2, stages: "m-1=Archived m-2=Production",
		check: func(t *testing.T, w *world) {
			if w.floor != 2 || lastHistory(w).By != "" {
				t.Errorf("floor %d, by %q", w.floor, lastHistory(w).By)
			}
		},
	}, {
		name: "an Archived request on the candidate ends its rollout",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.request("m-2", mlv1.StageArchived)
		},
		production: 1, stages: "m-1=Production m-2=Archived",
	}, {
		name: "a candidate whose ModelVersion is deleted is dropped",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.versions = w.versions[:1]
		},
		production: 1, stages: "m-1=Production",
	}, {
		name: "a failed bake retires the Production version and restores the previous one",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.verdict = "passed"
			w.reconcile(t)
			w.failedRollout = new(int64(2))
		},
		production: 1, stages: "m-1=Production m-2=Archived",
	}, {
		name: "the candidate is promoted at once when the Production version is retired under it",
		act: func(t *testing.T, w *world) {
			w.add(version(2, "0.91"))
			w.reconcile(t)
			w.request("m-1", mlv1.StageArchived)
		},
		production: 2, stages: "m-1=Archived m-2=Production",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := canaryWorld(t, cmp.Or(tc.mode, mlv1.PromotionAutomatic))
			tc.act(t, w)
			w.reconcile(t)
			d := w.reconcile(t) // a second reconcile changes nothing
			if len(d.Transitions) != 0 {
				t.Errorf("a second reconcile made transitions: %+v", d.Transitions)
			}
			if got := w.stages(); got != tc.stages {
				t.Errorf("stages %s, want %s", got, tc.stages)
			}
			if got := deref(w.production); got != tc.production {
				t.Errorf("Production %d, want %d", got, tc.production)
			}
			var candidate int64
			if w.candidate != nil {
				candidate = w.candidate.Number
			}
			if candidate != tc.candidate {
				t.Errorf("candidate %d, want %d", candidate, tc.candidate)
			}
			if tc.check != nil {
				tc.check(t, w)
			}
		})
	}
}

func deref(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}

// TestCanaryUnderRandomEvents plays random registrations, requests (some with the skip-rollout
// annotation), analysis verdicts, failed rollouts and deletions against a canary model, and checks
// after every reconcile that at most one version is Production (world.reconcile), that the
// candidate is a Staging version that exists, that a version that never served becomes Production
// only through its canary unless the rules say it may skip it, and that a second reconcile
// changes nothing.
func TestCanaryUnderRandomEvents(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 7))
		w := &world{policy: seedPolicy(), modelUID: "model", canary: true}
		if rng.IntN(3) == 0 {
			w.policy.Mode = mlv1.PromotionManual
		}
		served := map[int64]bool{}
		next := int64(1)
		for step := range 40 {
			var log string
			switch r := rng.IntN(10); {
			case r < 3 || len(w.versions) == 0:
				v := version(next, fmt.Sprintf("0.%d", 80+rng.IntN(15)))
				v.SkipRollout = rng.IntN(4) == 0
				w.add(v)
				log = "register " + v.Name
				next++
			case r < 6:
				v := &w.versions[rng.IntN(len(w.versions))]
				stage := []mlv1.Stage{mlv1.StageProduction, mlv1.StageArchived, mlv1.StageStaging}[rng.IntN(3)]
				if v.Request == stage {
					w.request(v.Name, "")
					w.reconcile(t)
				}
				w.request(v.Name, stage)
				log = fmt.Sprintf("request %s %s", v.Name, stage)
			case r < 8 && w.candidate != nil:
				w.verdict = []string{"passed", "failed"}[rng.IntN(2)]
				log = "verdict " + w.verdict
			case r < 9 && w.production != nil:
				w.failedRollout = new(*w.production)
				log = "rollout failed"
			default:
				i := rng.IntN(len(w.versions))
				log = "delete " + w.versions[i].Name
				w.versions = slices.Delete(w.versions, i, i+1)
			}
			before := w.production
			d := w.reconcile(t)
			where := fmt.Sprintf("seed %d step %d (%s): %s", seed, step, log, w.stages())
			if c := w.candidate; c != nil {
				v := w.find(c.Name)
				if v == nil || v.Stage != mlv1.StageStaging || v.UID != c.UID {
					t.Fatalf("%s: the candidate %+v is not a Staging version that exists", where, c)
				}
			}
			if p := w.production; p != nil && !sameNumber(before, p) {
				if !served[*p] && before != nil && !mayBypassCanary(d, *p, w) {
					t.Fatalf("%s: version %d became Production without its canary: %+v", where, *p, d.Transitions)
				}
				served[*p] = true
			}
			if d := w.reconcile(t); len(d.Transitions) != 0 {
				t.Fatalf("%s: a second reconcile made transitions: %+v", where, d.Transitions)
			}
		}
	}
}

func sameNumber(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// mayBypassCanary says whether version n became Production by a rule that skips the canary: its
// analysis passed, a request with the skip-rollout annotation, or the Production version left in
// the same decision, leaving the candidate nothing to share traffic with.
func mayBypassCanary(d Decision, n int64, w *world) bool {
	for _, t := range d.Transitions {
		if t.Version != n || t.To != mlv1.StageProduction {
			continue
		}
		if t.Reason == mlv1.ReasonAnalysisPassed {
			return true
		}
		if v := w.find(t.Name); v != nil && v.SkipRollout && t.Reason != mlv1.ReasonGatesPassed {
			return true
		}
	}
	for _, t := range d.Transitions {
		if t.From == mlv1.StageProduction && t.Reason != mlv1.ReasonSuperseded && t.Reason != mlv1.ReasonRolledBack {
			return true
		}
	}
	return false
}

// Two Production requests first seen in one view stand at the same instant: the one for the newer
// version wins, the other is answered with a note, and the history names only what happened.
func TestProductionRequestsSeenTogether(t *testing.T) {
	w := &world{policy: mlv1.Promotion{Mode: mlv1.PromotionManual, Gates: seedPolicy().Gates}}
	w.add(version(3, "0.8512"), version(4, "0.8723"), version(5, "0.88"))
	w.request("m-5", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Staging m-4=Staging m-5=Production")

	w.request("m-3", mlv1.StageProduction) // a rollback...
	w.request("m-4", mlv1.StageProduction) // ...and a promotion that lands in the same view
	d := w.reconcile(t)
	expectStages(t, w, "m-3=Staging m-4=Production m-5=Archived")
	for _, tr := range d.Transitions {
		if tr.Version == 3 || strings.Contains(tr.Message, "version 3") {
			t.Fatalf("the history names a rollback to version 3 that never happened: %+v", d.Transitions)
		}
	}
	if got := d.Versions["m-3"].RequestNote; !strings.Contains(got, "version 4") || !strings.Contains(got, "request Production again") {
		t.Fatalf("the losing request's note: %q", got)
	}
	if d.Versions["m-3"].ObservedRequest != mlv1.StageProduction {
		t.Fatalf("the losing request was answered, so it is observed: %+v", d.Versions["m-3"])
	}
	if got := d.Versions["m-4"].RequestNote; got != "" {
		t.Fatalf("the winning request has a note: %q", got)
	}
	// The answered request is not acted on later.
	if d := w.reconcile(t); len(d.Transitions) != 0 || d.Versions["m-3"].RequestNote != "" {
		t.Fatalf("a second reconcile acted again: %+v %q", d.Transitions, d.Versions["m-3"].RequestNote)
	}
	expectStages(t, w, "m-3=Staging m-4=Production m-5=Archived")
	// Requested again, alone, it wins.
	w.request("m-3", mlv1.StageNone)
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived m-5=Archived")
}

// The model is written before its versions: a view of the versions that lags behind it (a cache,
// another API server's watch cache) shows the rollback request as not yet acted on. Acting on it
// again, after a newer version was promoted, archived that version for good.
func TestARequestIsActedOnOnceWhateverTheLagOfTheVersionsView(t *testing.T) {
	w := &world{policy: seedPolicy(), modelUID: "model"}
	w.add(version(3, "0.8512"), version(4, "0.8723"))
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived")
	lagging := func() { // the versions' view still shows m-3 before the write that observed its request
		v := w.find("m-3")
		v.ObservedRequest, v.Stage = "", mlv1.StageArchived
	}
	lagging()
	w.add(version(5, "0.88"))
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")
	lagging()
	w.reconcile(t)
	expectStages(t, w, "m-3=Archived m-4=Archived m-5=Production")
	if h := lastHistory(w); h.Version != 5 && h.Version != 3 || h.To == mlv1.StageProduction && h.Version == 3 {
		t.Fatalf("the history ends with %+v", h)
	}

	// A new request (spec.stage cleared and written again: a new generation) is acted on.
	w.request("m-3", mlv1.StageNone)
	w.reconcile(t)
	w.request("m-3", mlv1.StageProduction)
	w.reconcile(t)
	expectStages(t, w, "m-3=Production m-4=Archived m-5=Archived")
	if len(w.handled) == 0 || len(w.handled) > mlv1.MaxHandledRequests {
		t.Fatalf("handled requests: %+v", w.handled)
	}
}

func TestHandledRequestsAreBounded(t *testing.T) {
	w := &world{policy: mlv1.Promotion{Mode: mlv1.PromotionManual, Gates: seedPolicy().Gates}, modelUID: "model"}
	for n := range int64(mlv1.MaxHandledRequests + 8) {
		w.add(requestingProduction(version(n+1, "0.9")))
		w.reconcile(t)
	}
	if len(w.handled) != mlv1.MaxHandledRequests {
		t.Fatalf("%d handled requests kept, want %d", len(w.handled), mlv1.MaxHandledRequests)
	}
	if last := w.handled[len(w.handled)-1]; last.VersionUID != fmt.Sprintf("uid-m-%d", mlv1.MaxHandledRequests+8) {
		t.Fatalf("the newest is not last: %+v", last)
	}
}
