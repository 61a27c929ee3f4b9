// Package promotion holds Podium's promotion rules as a pure function: given a model's policy,
// its recorded decision and its versions, Decide says which version is Production and which
// stage every other version is in. It reads no cluster and keeps no state, so every rule is
// tested with table tests.
//
// The rules, in the order they apply:
//
//   - Events are ordered on one clock, the version numbers: the registration of version n stands
//     at n; a stage request stands just after the newest version that existed when the operator
//     first saw it (a request written into the manifest of a version that is new to the operator
//     stands just after that version). Newer events win.
//   - Automatic mode promotes the newest version above the floor (status.automaticPromotionFloor)
//     that passes every gate and requireImprovement. A lower version never displaces a higher one
//     that was promoted automatically, and a rollback holds until a newer version is registered.
//   - A Production request promotes the version even when its gates fail (a rollback when it is
//     older); the version it replaces becomes Archived and is never promoted automatically again.
//   - An Archived request retires a version. Retiring the Production version restores the
//     previous Production version from the history, or leaves the model with none.
//   - A Staging request returns an Archived version to the candidates.
//   - A Production version whose rollout fails is Archived (reason RolloutFailed) and the previous
//     Production version restored, as for a retirement; it is never promoted automatically again.
//   - A Production version whose ModelVersion is deleted is retired the same way (reason Deleted).
//     The model records the object's UID, so another object that claims the number is a new version.
//   - With a canary rollout (Input.Canary), a promotion of a version that was never Production,
//     automatic or requested, makes it the candidate instead: Production stays where it is until
//     the candidate passes its analysis (then it is promoted, reason AnalysisPassed) or fails it
//     (then it is Archived, reason AnalysisFailed). A newer event replaces the candidate, and any
//     promotion that takes effect at once (a rollback, a request with the skip-rollout
//     annotation) ends it.
//   - A version whose bake fails is retired like a failed rollout (reason AnalysisFailed).
//   - Versions that claim a version number another version also claims are never promoted.
//   - Stages decided by another model of the same name (deleted and created again) are not
//     inherited: such versions are decided as new ones.
package promotion

import (
	"cmp"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// Version is what the rules need to know about one ModelVersion.
type Version struct {
	Name    string
	UID     string
	Number  int64
	Metrics map[string]mlv1.Number
	// Request is spec.stage; ObservedRequest is status.observedStageRequest.
	Request         mlv1.Stage
	ObservedRequest mlv1.Stage
	// RequestID is spec.stageRequestID; ObservedRequestID is status.observedStageRequestID.
	RequestID         string
	ObservedRequestID string
	// Stage is the stage recorded in the version's status; empty for a version never decided.
	Stage mlv1.Stage
	// ModelUID is the UID of the model that decided Stage (status.registeredModelUID).
	ModelUID   string
	Generation int64
	// RequestedBy is who last changed spec.stage (the ml.podium.dev/stage-requested-by
	// annotation); empty when unknown.
	RequestedBy string
	// SkipRollout is the ml.podium.dev/skip-rollout annotation: a Production request on the
	// version takes effect at once, without a canary.
	SkipRollout bool
}

// Candidate is the version a canary rollout runs, and the promotion that waits for it.
type Candidate struct {
	Name   string
	UID    string
	Number int64
	// Reason is what made it the candidate (GatesPassed, ManualRequest or Rollback), By who
	// asked, and Floor the automatic promotion floor once it is promoted.
	Reason mlv1.HistoryReason
	By     string
	Floor  int64
	// Passed or Failed is the verdict of its analysis, when there is one; Message explains it.
	Passed  bool
	Failed  bool
	Message string
}

// Failure is a Production version whose rollout or bake failed.
type Failure struct {
	Version int64
	Reason  mlv1.HistoryReason
	Message string
}

// Input is a model's policy, its recorded decision and its versions.
type Input struct {
	Policy mlv1.Promotion
	// ModelUID is the RegisteredModel's UID.
	ModelUID string
	// Production, ProductionUID, Floor and Latest are the RegisteredModel's recorded decision.
	Production    *int64
	ProductionUID string
	Floor         int64
	Latest        int64
	History       []mlv1.HistoryEntry
	Versions      []Version
	// Failed is the Production version whose rollout the prediction Deployment reports as
	// failed (its progress deadline passed), or whose bake failed its analysis, if any.
	Failed *Failure
	// Canary says that a version that was never Production becomes the candidate of a canary
	// rollout rather than Production (spec.serving.rollout.strategy: Canary).
	Canary bool
	// Candidate is the candidate the model records (status.rollout while its canary runs), with
	// the verdict of its analysis, if any.
	Candidate *Candidate
	// Handled are the requests the model records as acted on (status.handledRequests): a version
	// whose view still shows one of them as new lags behind the model, and is not acted on again.
	Handled []mlv1.HandledRequest
	// DeletedBy is who deleted the Production version's ModelVersion, when it is being deleted
	// (so not among Versions) and its deletion was marked first; empty when nobody known.
	DeletedBy string
}

// VersionDecision is the stage decided for one version and what explains it.
type VersionDecision struct {
	Stage           mlv1.Stage
	ObservedRequest mlv1.Stage
	// ObservedRequestID is the stageRequestID of ObservedRequest.
	ObservedRequestID string
	Gates             GateOutcome
	PrimaryMetric     string
	// Duplicate is true when another version claims the same number.
	Duplicate bool
	// Note explains why the version is not where its gates or request would put it, while that
	// lasts (a duplicate number, requireImprovement, the canary it runs).
	Note string
	// RequestNote answers a new stage request that this decision observes without carrying it
	// out; the controller keeps it in status.requestNote until spec.stage changes.
	RequestNote string
}

// Transition is one change of stage, for the history and for Events.
type Transition struct {
	Name    string
	Version int64
	// UID is the ModelVersion's UID.
	UID     string
	From    mlv1.Stage
	To      mlv1.Stage
	Reason  mlv1.HistoryReason
	Message string
	// By is who caused the transition: the requester of the spec.stage request that caused it
	// (empty when unknown), or mlv1.ByOperator for the operator's own decisions.
	By string
}

// Decision is the outcome of Decide.
type Decision struct {
	Production *int64
	// ProductionUID is the UID of the ModelVersion that holds the Production stage.
	ProductionUID string
	Floor         int64
	Latest        *int64
	Versions      map[string]VersionDecision
	Transitions   []Transition
	// Candidate is the version the canary rollout runs; nil when there is none.
	Candidate *Candidate
	// Handled is Input.Handled with the requests this decision acted on, the newest last,
	// at most mlv1.MaxHandledRequests.
	Handled []mlv1.HandledRequest
}

// event is a promotion or a request, placed on the version-number clock: registration of n at 2n,
// a request made after version L at 2L+1.
type event struct {
	position int64
	version  *Version
	request  mlv1.Stage // empty for a registration
}

// decider carries the state Decide folds the events into.
type decider struct {
	in         Input
	production *int64
	position   int64 // the clock position of the current Production decision
	floor      int64
	latest     int64
	// productionUID is the UID of the ModelVersion that holds the Production stage; empty when
	// unknown (a status written before UIDs were recorded).
	productionUID string
	// deleted is the Production version whose ModelVersion no longer exists, if any.
	deleted *int64
	// candidate is the version a canary rollout runs, candidatePosition the clock position of
	// the promotion that waits for it.
	candidate         *Candidate
	candidatePosition int64
	byNumber          map[int64][]*Version
	gates             map[string]GateOutcome
	archived          map[string]bool // versions that are Archived after the events
	reasons           map[string]reason
	notes             map[string]string
	requestNotes      map[string]string
}

type reason struct {
	reason  mlv1.HistoryReason
	message string
	by      string
}

// Decide applies the promotion rules. It never mutates its input.
func Decide(in Input) Decision {
	in.Versions = normalize(in)
	d := &decider{
		in:       in,
		floor:    in.Floor,
		latest:   in.Latest,
		byNumber: map[int64][]*Version{},
		gates:    map[string]GateOutcome{},
		archived: map[string]bool{},
		reasons:  map[string]reason{},
		notes:    map[string]string{},

		requestNotes: map[string]string{},
	}
	for i := range in.Versions {
		v := &in.Versions[i]
		d.byNumber[v.Number] = append(d.byNumber[v.Number], v)
		d.gates[v.Name] = EvaluateGates(in.Policy.Gates, v.Metrics)
		d.latest = max(d.latest, v.Number)
		if v.Stage == mlv1.StageArchived {
			d.archived[v.Name] = true
		}
	}
	if in.Production == nil && in.Floor > 0 {
		d.position = 2*in.Floor + 1 // the last decision retired the Production version
	}
	if in.Production != nil {
		p := *in.Production
		d.production, d.productionUID = &p, in.ProductionUID
		d.position = 2 * in.Floor
		if p != in.Floor {
			d.position++ // the current Production came from a request
		}
		if d.holder(p) == nil && (in.ProductionUID != "" || len(d.byNumber[p]) == 0) {
			d.productionDeleted(p)
		}
	}

	if in.Failed != nil {
		d.rolloutFailed(*in.Failed)
	}
	if in.Candidate != nil {
		d.resumeCandidate(*in.Candidate)
	}
	for _, e := range d.events() {
		if e.request == "" {
			d.promoteAutomatically(e.version)
		} else {
			d.handleRequest(e)
		}
	}
	if c := d.candidate; c != nil && d.production == nil {
		// Production was retired under the rollout: the candidate has nothing to share traffic
		// with, as the first version never has.
		if v := d.unique(c.Number); v != nil {
			d.promote(v, d.candidatePosition, c.Floor, reason{c.Reason,
				"Promoted at once: its canary lost the Production version it shared traffic with", c.By})
		}
	}
	return d.result()
}

// normalize returns the versions as the model's own decision sees them: a version decided by
// another model of the same name is new to this one, and the ModelVersion the model records as
// Production is Production, whatever its own status says (the model's status is written first,
// and a version's write may not have happened yet, or may have been fenced).
func normalize(in Input) []Version {
	out := slices.Clone(in.Versions)
	for i := range out {
		v := &out[i]
		if v.ModelUID != "" && in.ModelUID != "" && v.ModelUID != in.ModelUID {
			v.Stage = ""
		}
		if in.Production != nil && v.Number == *in.Production && in.ProductionUID != "" && v.UID == in.ProductionUID {
			v.Stage = mlv1.StageProduction
		}
	}
	return out
}

// events lists the automatic candidates and the new requests, oldest first.
func (d *decider) events() []event {
	var events []event
	for i := range d.in.Versions {
		v := &d.in.Versions[i]
		if d.isDuplicate(v) {
			if d.isNewRequest(v) {
				d.notes[v.Name] = fmt.Sprintf("The request for %s waits: version %d is claimed by more than one ModelVersion", v.Request, v.Number)
			}
			continue
		}
		if d.in.Policy.Mode != mlv1.PromotionManual && v.Number > d.floor && !d.archived[v.Name] && d.gates[v.Name].Passed {
			events = append(events, event{position: 2 * v.Number, version: v})
		}
		if d.isNewRequest(v) {
			pos := 2*d.latest + 1
			if v.Stage == "" && v.Generation == 1 {
				pos = 2*v.Number + 1 // written into the manifest the version was registered with
			}
			events = append(events, event{position: pos, version: v, request: v.Request})
		}
	}
	slices.SortStableFunc(events, func(a, b event) int {
		return cmp.Or(cmp.Compare(a.position, b.position), cmp.Compare(a.version.Number, b.version.Number))
	})
	return d.dropTiedProductionRequests(events)
}

// dropTiedProductionRequests keeps, of the Production requests that stand at one clock position
// (first seen in one view, so nothing tells which was made last), only the one for the newest
// version, and answers the others with a note. Acting on each in turn would record promotions and
// rollbacks that never served. events is sorted.
func (d *decider) dropTiedProductionRequests(events []event) []event {
	winner := map[int64]*Version{}
	for _, e := range events {
		if e.request == mlv1.StageProduction {
			winner[e.position] = e.version // the last one of the position: the newest version
		}
	}
	return slices.DeleteFunc(events, func(e event) bool {
		w := winner[e.position]
		if e.request != mlv1.StageProduction || w == e.version {
			return false
		}
		d.requestNotes[e.version.Name] = fmt.Sprintf("The Production request was not acted on: it was first seen "+
			"together with a Production request for version %d, and of requests seen together the newest version's "+
			"wins; request Production again to promote this version", w.Number)
		return true
	})
}

// isNewRequest says whether v's spec.stage is a request not yet acted on: it differs from what
// the version's status observed, or it has a stageRequestID other than the observed one (removing
// the ID asks for nothing), and the model does not record it as handled (a view of the version
// that lags behind the model's).
func (d *decider) isNewRequest(v *Version) bool {
	return v.Request != "" && v.Request != mlv1.StageNone &&
		(v.Request != v.ObservedRequest || (v.RequestID != "" && v.RequestID != v.ObservedRequestID)) && !d.handled(v)
}

func (d *decider) handled(v *Version) bool {
	return slices.ContainsFunc(d.in.Handled, func(h mlv1.HandledRequest) bool {
		return h.VersionUID == v.UID && h.Generation >= v.Generation
	})
}

// handledRequests is in.Handled with the requests of this decision: each version's newest,
// newest last, at most MaxHandledRequests.
func (d *decider) handledRequests() []mlv1.HandledRequest {
	out := slices.Clone(d.in.Handled)
	for i := range d.in.Versions {
		v := &d.in.Versions[i]
		if !d.isNewRequest(v) || d.isDuplicate(v) || v.UID == "" {
			continue // a duplicate's request waits
		}
		out = slices.DeleteFunc(out, func(h mlv1.HandledRequest) bool { return h.VersionUID == v.UID })
		out = append(out, mlv1.HandledRequest{VersionUID: v.UID, Generation: v.Generation})
	}
	if len(out) > mlv1.MaxHandledRequests {
		out = out[len(out)-mlv1.MaxHandledRequests:]
	}
	return out
}

func (d *decider) isDuplicate(v *Version) bool { return len(d.byNumber[v.Number]) > 1 }

// promoteAutomatically makes v Production when it is newer than the current decision and beats
// the current Production version where requireImprovement asks for it.
func (d *decider) promoteAutomatically(v *Version) {
	if 2*v.Number <= d.lastPosition() || d.isProduction(v) {
		return
	}
	if rule := d.in.Policy.RequireImprovement; rule != nil && d.production != nil {
		if champion := d.holder(*d.production); champion != nil {
			if ok, why := improves(rule, v.Metrics, champion.Metrics); !ok {
				d.notes[v.Name] = why
				return
			}
		}
	}
	d.promote(v, 2*v.Number, v.Number, reason{mlv1.ReasonGatesPassed, "Passed every gate: " + d.gates[v.Name].Message, mlv1.ByOperator})
}

// handleRequest acts on a new spec.stage request.
func (d *decider) handleRequest(e event) {
	v := e.version
	switch e.request {
	case mlv1.StageProduction:
		if d.isProduction(v) {
			return
		}
		if e.position < d.lastPosition() {
			d.requestNotes[v.Name] = "The Production request in the version's manifest was not acted on: the model's current " +
				"decision came after it; clear spec.stage and request Production again to promote this version"
			return
		}
		floor := (e.position - 1) / 2
		r, msg := mlv1.ReasonManualRequest, "Promoted by a spec.stage: Production request"
		if d.production != nil && v.Number < *d.production {
			r, msg = mlv1.ReasonRollback, fmt.Sprintf("Rolled back from version %d by a spec.stage: Production request", *d.production)
		}
		if g := d.gates[v.Name]; !g.Passed {
			msg += "; its gates do not pass (" + g.Message + ")"
		}
		d.promote(v, e.position, floor, reason{r, msg, v.RequestedBy})
	case mlv1.StageArchived:
		if d.isCandidate(v) {
			d.candidate = nil
		}
		wasProduction := d.isProduction(v)
		d.archive(v, reason{mlv1.ReasonArchiveRequest, "Retired by a spec.stage: Archived request", v.RequestedBy})
		if wasProduction {
			d.production, d.productionUID = nil, ""
			d.position, d.floor = e.position, (e.position-1)/2
			d.restorePrevious(v.Number, v.RequestedBy)
		}
	case mlv1.StageStaging:
		if d.archived[v.Name] {
			delete(d.archived, v.Name)
			d.reasons[v.Name] = reason{mlv1.ReasonUnarchived, "Returned to the candidates by a spec.stage: Staging request", v.RequestedBy}
		}
	}
}

// rolloutFailed archives the Production version whose rollout or bake failed and restores the
// previous Production version, as the newest event. The failed version is Archived, so the
// automatic rule never promotes it again; a Production request may still try it.
func (d *decider) rolloutFailed(f Failure) {
	n := f.Version
	if d.production == nil || *d.production != n {
		return
	}
	v := d.holder(n)
	if v == nil {
		return
	}
	d.archive(v, reason{f.Reason, f.Message, mlv1.ByOperator})
	d.production, d.productionUID = nil, ""
	d.position, d.floor = 2*d.latest+1, d.latest
	d.restorePrevious(v.Number, mlv1.ByOperator)
}

// resumeCandidate takes up the candidate the model records: promoted when its analysis passed,
// Archived when it failed, and otherwise still the candidate, unless a newer event replaces it.
// A candidate whose ModelVersion is gone, or now shares its number, is dropped.
func (d *decider) resumeCandidate(c Candidate) {
	var v *Version
	for _, w := range d.byNumber[c.Number] {
		if (c.UID == "" || w.UID == c.UID) && !d.isDuplicate(w) {
			v = w
		}
	}
	if v == nil || d.isProduction(v) {
		return
	}
	position := 2 * c.Floor
	if c.Reason != mlv1.ReasonGatesPassed {
		position++ // a request stands after the newest version of its time
	}
	switch {
	case c.Failed:
		d.archive(v, reason{mlv1.ReasonAnalysisFailed, c.Message, mlv1.ByOperator})
	case c.Passed:
		d.promote(v, max(position, d.position), max(c.Floor, d.floor), reason{mlv1.ReasonAnalysisPassed, c.Message, c.By})
	default:
		d.candidate, d.candidatePosition = &Candidate{Name: v.Name, UID: v.UID, Number: v.Number,
			Reason: c.Reason, By: c.By, Floor: c.Floor}, position
	}
}

// holdForCanary makes v the candidate of a canary rollout instead of Production, when the model
// rolls out by canary, another version is Production and v never was: promotions by the gates and
// requests wait for the analysis; the first Production version, a rollback to a version that
// served before, a request that skips the rollout and a candidate that passed take effect at once.
func (d *decider) holdForCanary(v *Version, position, floor int64, r reason) bool {
	switch {
	case !d.in.Canary, r.reason == mlv1.ReasonAnalysisPassed, d.wasProduction(v):
		return false
	case d.production == nil:
		return false // no version serves: there is no traffic to share and nothing to compare with
	case r.reason != mlv1.ReasonGatesPassed && v.SkipRollout:
		return false
	}
	d.candidate, d.candidatePosition = &Candidate{Name: v.Name, UID: v.UID, Number: v.Number,
		Reason: r.reason, By: r.by, Floor: floor}, position
	if d.archived[v.Name] {
		delete(d.archived, v.Name)
		d.reasons[v.Name] = reason{r.reason, "The candidate of a canary rollout, by a spec.stage: Production request", r.by}
	}
	return true
}

// wasProduction says whether the history shows v, this very ModelVersion, in Production: a
// version deleted and registered again under its number is a bundle that never served.
func (d *decider) wasProduction(v *Version) bool {
	return slices.ContainsFunc(d.in.History, func(h mlv1.HistoryEntry) bool {
		return h.To == mlv1.StageProduction && sameObject(h, v)
	})
}

// sameObject says whether history entry h is about v: the same number and, where the entry
// records a UID, the same object.
func sameObject(h mlv1.HistoryEntry, v *Version) bool {
	return h.Version == v.Number && (h.VersionUID == "" || h.VersionUID == v.UID)
}

func (d *decider) isCandidate(v *Version) bool {
	return d.candidate != nil && d.candidate.Name == v.Name && d.candidate.UID == v.UID
}

// lastPosition is the clock position of the newest decision: Production's, or the candidate's.
func (d *decider) lastPosition() int64 {
	if d.candidate != nil {
		return max(d.position, d.candidatePosition)
	}
	return d.position
}

// productionDeleted retires the Production version whose ModelVersion is gone, as the newest
// event, and restores the previous Production version, as a retirement does. Both are by whoever
// marked the ModelVersion for deletion (Input.DeletedBy): the API server does not say who deleted
// an object, and the operator did not.
func (d *decider) productionDeleted(n int64) {
	d.deleted = &n
	d.production, d.productionUID = nil, ""
	d.position, d.floor = 2*d.latest+1, d.latest
	d.restorePrevious(n, d.in.DeletedBy)
}

// promote makes v Production and archives the version it replaces; whoever caused r caused both.
// With a canary rollout, v may become the candidate instead (see holdForCanary). A promotion
// that takes effect ends any candidate's rollout.
func (d *decider) promote(v *Version, position, floor int64, r reason) {
	if d.holdForCanary(v, position, floor, r) {
		return
	}
	d.candidate = nil
	if d.production != nil {
		if old := d.holder(*d.production); old != nil {
			replaced := reason{mlv1.ReasonSuperseded, fmt.Sprintf("Replaced by version %d", v.Number), r.by}
			if r.reason == mlv1.ReasonRollback {
				replaced = reason{mlv1.ReasonRolledBack, fmt.Sprintf("Rolled back to version %d", v.Number), r.by}
			}
			d.archive(old, replaced)
		}
	}
	n := v.Number
	d.production, d.productionUID = &n, v.UID
	d.position, d.floor = position, floor
	delete(d.archived, v.Name)
	d.reasons[v.Name] = r
}

func (d *decider) archive(v *Version, r reason) {
	d.archived[v.Name] = true
	d.reasons[v.Name] = r
}

// restorePrevious makes the newest earlier Production version from the history Production
// again, skipping versions that are gone, duplicated, or were retired, failed or deleted since;
// by caused the retirement, and so the restoration.
func (d *decider) restorePrevious(retired int64, by string) {
	retiredOnRequest := map[int64]bool{retired: true}
	for _, h := range slices.Backward(d.in.History) {
		if h.To == mlv1.StageArchived && (h.Reason == mlv1.ReasonArchiveRequest ||
			h.Reason == mlv1.ReasonRolloutFailed || h.Reason == mlv1.ReasonDeleted || h.Reason == mlv1.ReasonAnalysisFailed) {
			retiredOnRequest[h.Version] = true
		}
		if h.To != mlv1.StageProduction || retiredOnRequest[h.Version] {
			continue
		}
		if prev := d.unique(h.Version); prev != nil && sameObject(h, prev) {
			n := prev.Number
			d.production, d.productionUID = &n, prev.UID
			delete(d.archived, prev.Name)
			d.reasons[prev.Name] = reason{mlv1.ReasonRestored, fmt.Sprintf("Restored in place of version %d", retired), by}
			return
		}
	}
}

// unique returns the only version with number n, or nil when none or several claim it.
func (d *decider) unique(n int64) *Version {
	if vs := d.byNumber[n]; len(vs) == 1 {
		return vs[0]
	}
	return nil
}

// holder returns the ModelVersion that carries version n's Production stage, if any.
func (d *decider) holder(n int64) *Version {
	for _, v := range d.byNumber[n] {
		if d.holdsProduction(v) {
			return v
		}
	}
	return nil
}

func (d *decider) isProduction(v *Version) bool {
	return d.production != nil && *d.production == v.Number && d.holdsProduction(v)
}

// holdsProduction says whether v is the ModelVersion that carries its number's Production stage:
// the object that was made Production, when its UID is known; otherwise the only one with that
// number, or, among duplicates, the one that was Production before the duplicate appeared.
func (d *decider) holdsProduction(v *Version) bool {
	if d.production != nil && v.Number == *d.production && d.productionUID != "" {
		return v.UID == d.productionUID
	}
	if !d.isDuplicate(v) {
		return true
	}
	return v.Stage == mlv1.StageProduction
}

// result derives every version's stage from the events' outcome.
func (d *decider) result() Decision {
	out := Decision{Production: d.production, Floor: d.floor, Versions: map[string]VersionDecision{}, Candidate: d.candidate,
		Handled: d.handledRequests()}
	if d.latest > 0 {
		l := d.latest
		out.Latest = &l
	}
	if d.production != nil {
		if h := d.holder(*d.production); h != nil {
			out.ProductionUID = h.UID
		}
	}
	if out.Production != nil && out.ProductionUID == "" {
		out.ProductionUID = d.productionUID
	}
	if n := d.deleted; n != nil && !d.recorded(*n, mlv1.StageProduction, mlv1.StageArchived) {
		who := "by whom: the API server's audit log"
		if d.in.DeletedBy != "" {
			who = "by " + d.in.DeletedBy + ", who marked it for deletion"
		}
		msg := fmt.Sprintf("Its ModelVersion was deleted (%s); no earlier Production version is left to restore", who)
		if d.production != nil {
			msg = fmt.Sprintf("Its ModelVersion was deleted (%s); version %d, the previous Production version, was restored",
				who, *d.production)
		}
		out.Transitions = append(out.Transitions, Transition{
			Version: *n, UID: d.in.ProductionUID, From: mlv1.StageProduction, To: mlv1.StageArchived,
			Reason: mlv1.ReasonDeleted, Message: Shorten(msg, mlv1.MaxHistoryMessage), By: d.in.DeletedBy,
		})
	}
	for i := range d.in.Versions {
		v := &d.in.Versions[i]
		g := d.gates[v.Name]
		vd := VersionDecision{
			Stage:             d.stageOf(v, g),
			ObservedRequest:   v.Request,
			ObservedRequestID: v.RequestID,
			Gates:             g,
			PrimaryMetric:     PrimaryMetric(d.in.Policy.Gates, v.Metrics),
			Duplicate:         d.isDuplicate(v),
			Note:              d.notes[v.Name],
			RequestNote:       d.requestNotes[v.Name],
		}
		if d.isCandidate(v) && vd.Note == "" {
			vd.Note = "The candidate of the model's canary rollout: the model's status.rollout shows how it goes"
		}
		if vd.Duplicate && d.isNewRequest(v) {
			vd.ObservedRequest, vd.ObservedRequestID = v.ObservedRequest, v.ObservedRequestID // the request waits for the duplicate to go
		}
		out.Versions[v.Name] = vd
		if d.isTransition(v.Stage, vd.Stage) && !d.recorded(v.Number, v.Stage, vd.Stage) {
			r, ok := d.reasons[v.Name]
			if !ok {
				r = derivedReason(vd.Stage, g)
			}
			out.Transitions = append(out.Transitions, Transition{
				Name: v.Name, Version: v.Number, UID: v.UID, From: v.Stage, To: vd.Stage, Reason: r.reason, Message: Shorten(r.message, mlv1.MaxHistoryMessage),
				By: r.by,
			})
		}
	}
	// Leave-Production first, then the rest, so that whoever applies the transitions in order
	// never shows two Production versions.
	slices.SortStableFunc(out.Transitions, func(a, b Transition) int {
		return rank(a) - rank(b)
	})
	return out
}

func rank(t Transition) int {
	switch {
	case t.From == mlv1.StageProduction:
		return 0
	case t.To == mlv1.StageProduction:
		return 2
	}
	return 1
}

func (d *decider) stageOf(v *Version, g GateOutcome) mlv1.Stage {
	switch {
	case d.isProduction(v):
		return mlv1.StageProduction
	case d.archived[v.Name], v.Stage == mlv1.StageProduction:
		return mlv1.StageArchived
	case d.isCandidate(v):
		return mlv1.StageStaging
	case d.isDuplicate(v):
		return mlv1.StageNone
	case !g.Passed:
		return mlv1.StageNone
	case d.in.Policy.Mode != mlv1.PromotionManual && d.production != nil && v.Number < *d.production:
		// Passed, but an older version than the automatic choice: it would have been promoted and
		// replaced had the versions arrived in order, so it ends Archived whatever the order.
		return mlv1.StageArchived
	}
	return mlv1.StageStaging
}

func derivedReason(to mlv1.Stage, g GateOutcome) reason {
	switch to {
	case mlv1.StageStaging:
		return reason{mlv1.ReasonGatesPassed, "Passed every gate: " + g.Message, mlv1.ByOperator}
	case mlv1.StageArchived:
		return reason{mlv1.ReasonSuperseded, "Passed every gate, but a newer version is Production", mlv1.ByOperator}
	case mlv1.StageProduction:
		return reason{mlv1.ReasonGatesPassed, "Production, as recorded on the model", mlv1.ByOperator}
	}
	return reason{mlv1.ReasonGatesFailed, g.Message, mlv1.ByOperator}
}

// isTransition says whether a change of stage is a transition for the history and Events: a
// change of a version already decided, or a new version that goes straight to Production. A new
// version's first stage (None, Staging, or Archived because a newer version is Production) is
// shown on the version alone, so registering a thousand versions does not flood the history.
func (d *decider) isTransition(from, to mlv1.Stage) bool {
	return from != to && (from != "" || to == mlv1.StageProduction)
}

// recorded says whether the history's newest entry for the version is already this change: the
// model's status was written but the version's was not yet, or the cache has not seen it yet.
// Such a change is applied to the version again, but is not a new transition.
func (d *decider) recorded(version int64, from, to mlv1.Stage) bool {
	last := lastEntry(d.in.History, version)
	return last != nil && last.From == from && last.To == to
}

// Shorten returns msg cut to at most limit characters, ending in "..." when it was cut.
func Shorten(msg string, limit int) string {
	if utf8.RuneCountInString(msg) <= limit {
		return msg
	}
	runes := []rune(msg)
	return string(runes[:limit-3]) + "..."
}

// AppendHistory adds the transitions to the history, stamped with now, and keeps the newest limit
// entries (the model's spec.historyLimit): a history longer than a lowered limit is trimmed even
// when there is no transition to add. Each new entry's sequence follows the newest entry's (the
// newest is never trimmed); after entries written without one, it follows their count.
func AppendHistory(history []mlv1.HistoryEntry, ts []Transition, now time.Time, limit int) []mlv1.HistoryEntry {
	out := slices.Clone(history)
	next := int64(len(history)) + 1
	if n := len(history); n > 0 && history[n-1].Sequence > 0 {
		next = history[n-1].Sequence + 1
	}
	for _, t := range ts {
		out = append(out, mlv1.HistoryEntry{
			Sequence: next, Version: t.Version, VersionUID: t.UID, From: t.From, To: t.To, Reason: t.Reason,
			Message: Shorten(t.Message, mlv1.MaxHistoryMessage), Time: metav1.NewTime(now), By: t.By,
		})
		next++
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

func lastEntry(h []mlv1.HistoryEntry, version int64) *mlv1.HistoryEntry {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Version == version {
			return &h[i]
		}
	}
	return nil
}
