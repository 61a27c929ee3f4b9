package explore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/controller"
)

// world is one schedule: the API server, the managers, the faults, the trace and the violations
// found. Only one goroutine touches it at a time: the scheduler, or the one reconcile it lets
// proceed.
type world struct {
	seed     uint64
	rng      *rand.Rand
	srv      *server
	clk      clock
	managers []*manager
	faults   faults
	rules    []*faultRule
	tracing  bool
	trace    []string
	actor    string // who writes now, for the trace
	writer   *run   // the reconcile that writes now, nil for the user
	// lastFaultApplied says whether the fault fault returned last is applied before it fails.
	lastFaultApplied bool
	// violations are the broken invariants, in the order found; the schedule stops at the first.
	violations []violation
	// serving is what the schedule's models serve (serving.go); prom is its Prometheus, and
	// measurements the measurements the managers started that it has not answered yet.
	serving      servingMode
	prom         *prometheus
	measurements []measurement
	// answered is what prom answered, by model, version and metric.
	answered map[answerKey][]answer
	// canaries counts the canaries begun, by how they ended ("" while they run).
	canaries map[mlv1.RolloutPhase]int
}

// faults are a schedule's rates: write fails without being applied; commit is applied and
// still fails (a timeout after commit); read fails an APIReader read; crash stops a manager at
// a step of the scheduler.
type faults struct {
	write, commit, read, crash float64
}

// faultRule is a scripted fault: the next times calls that match fail with err, after being
// applied when applied is set.
type faultRule struct {
	manager string // "" for any
	match   func(call) bool
	err     error
	applied bool
	times   int
}

// call is one client call of a reconcile: the point at which the scheduler decides who proceeds.
type call struct {
	verb  string // get, list, api-get, api-list, create, update, patch, delete, status-patch, ...
	kind  kind
	key   client.ObjectKey // the object, or the namespace of a list
	write bool
}

func (c call) String() string {
	return fmt.Sprintf("%s %s %s", c.verb, c.kind, c.key.Name)
}

var errCrashed = errors.New("explore: the manager crashed")

func newWorld(seed uint64) *world {
	w := &world{seed: seed, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	w.clk.t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.srv = newServer(w)
	w.prom = &prometheus{w: w}
	w.answered = map[answerKey][]answer{}
	w.canaries = map[mlv1.RolloutPhase]int{}
	return w
}

func (w *world) now() time.Time { return w.clk.tick() }

func (w *world) tracef(format string, args ...any) {
	if w.tracing {
		w.trace = append(w.trace, fmt.Sprintf(format, args...))
	}
}

// violation is a broken invariant or a failed final check.
type violation struct {
	check   string
	message string
}

func (v violation) String() string { return v.check + ": " + v.message }

// The checks, by the name a violation reports.
const (
	twoProduction        = "two Production versions"
	unrecordedProduction = "a version entered Production that the model does not record"
	specWritten          = "the operator wrote a spec"
	panicked             = "the reconciler panicked"
	noConvergence        = "no convergence without faults"
	convergedWrites      = "a converged system still writes"
	productionMismatch   = "the model's Production version is not the one version that says Production"
	requestUnanswered    = "a request neither acted on nor explained"
	notDecided           = "a stage is not the model's decision"
	orphanStatus         = "a version of a missing model does not say so"
	capacityDropped      = "a Podium write made fewer pods serve than spec.serving.replicas"
	unmeasuredPromotion  = "a candidate became Production without passing answers of its own"
	canaryLeft           = "a canary Deployment outlives its rollout"
	notServed            = "the stable Deployment does not serve the Production version on every replica"
	unguardedHistory     = "a model has history without the finalizer that records its deletion"
	stuckTerminating     = "a deleted model stays Terminating"
	deletionUnrecorded   = "a deleted model with history has no record of its deletion"
	stagingWrong         = "the staging Deployment does not run the newest Staging version"
	versionFinalizer     = "a version's finalizer is not its model's Production version's alone"
	routeToNothing       = "the route sends requests to a canary Service with no pod behind it"
	// versionDeletionUnattributed is a deleted Production version whose history entry does not
	// name who marked it.
	versionDeletionUnattributed = "a deleted Production version's retirement does not name who marked it"
)

func (w *world) violate(check, format string, args ...any) {
	v := violation{check: check, message: fmt.Sprintf(format, args...)}
	w.violations = append(w.violations, v)
	w.tracef("!! VIOLATION (%s): %s", check, v.message)
}

// wrote traces a successful write and checks the invariants that must hold after every write:
// at most one Production version per model, and a version enters Production only while the
// model's status on the server names it.
func (w *world) wrote(k kind, prev, cur client.Object) {
	if w.tracing && k != records {
		if cur == nil {
			w.tracef("      %s: deleted %s %s", w.actor, k, prev.GetName())
		} else {
			w.tracef("      %s: %s", w.actor, summary(cur))
		}
	}
	if k == deployments && w.writer != nil {
		w.checkCapacity(prev, cur)
	}
	if k == routes || k == deployments {
		o := cur
		if o == nil {
			o = prev
		}
		if o != nil {
			if owner := metav1.GetControllerOf(o); owner != nil && owner.Kind == "RegisteredModel" {
				w.checkRouteServed(owner.Name)
			}
		}
	}
	if k == models && cur != nil {
		m := cur.(*mlv1.RegisteredModel)
		w.countRollout(prev, m)
		if len(m.Status.History) > 0 && !controllerutil.ContainsFinalizer(m, mlv1.FinalizerStageRecords) {
			w.violate(unguardedHistory, "model %s has %d history entries and no finalizer %s: deleting it now "+
				"would leave no record of the deletion", m.Name, len(m.Status.History), mlv1.FinalizerStageRecords)
		}
	}
	if k != versions || cur == nil {
		return
	}
	v := cur.(*mlv1.ModelVersion)
	var production []string
	for _, o := range w.srv.versionsOf(v.Spec.RegisteredModel) {
		if o.Status.Stage == mlv1.StageProduction {
			production = append(production, fmt.Sprintf("%s (v%d)", o.Name, o.Spec.Version))
		}
	}
	if len(production) > 1 {
		w.violate(twoProduction, "model %s has %d Production versions: %s",
			v.Spec.RegisteredModel, len(production), strings.Join(production, ", "))
	}
	entered := v.Status.Stage == mlv1.StageProduction &&
		(prev == nil || prev.(*mlv1.ModelVersion).Status.Stage != mlv1.StageProduction)
	if entered && w.writer != nil && w.writer.epochs[v.Spec.RegisteredModel] != w.srv.epochs[v.Spec.RegisteredModel] {
		// The model was deleted or created while this reconcile ran: its decision was about a
		// model that is gone, and the new one adopts the version as its own.
		w.tracef("      (the model was deleted or created since this reconcile began)")
		entered = false
	}
	if entered {
		m := w.srv.model(v.Spec.RegisteredModel)
		switch {
		case m == nil:
			w.violate(unrecordedProduction, "%s entered Production while model %s does not exist",
				v.Name, v.Spec.RegisteredModel)
		case m.Status.ProductionVersion == nil || *m.Status.ProductionVersion != v.Spec.Version:
			w.violate(unrecordedProduction, "%s (v%d) entered Production while model %s records Production %s",
				v.Name, v.Spec.Version,
				m.Name, optional(m.Status.ProductionVersion))
		default:
			w.checkAnalysisPassed(v, m)
		}
	}
}

func optional(n *int64) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprint(*n)
}

// summary is one line that says what matters of an object's state.
func summary(o client.Object) string {
	switch o := o.(type) {
	case *mlv1.RegisteredModel:
		recent := o.Status.History[max(0, len(o.Status.History)-3):]
		hist := make([]string, 0, len(recent))
		for _, h := range recent {
			hist = append(hist, fmt.Sprintf("%d %s->%s %s", h.Version, h.From, h.To, h.Reason))
		}
		gates := make([]string, 0, len(o.Spec.Promotion.Gates))
		for _, g := range o.Spec.Promotion.Gates {
			gates = append(gates, fmt.Sprintf("%s>=%s", g.Metric, optionalNumber(g.Min)))
		}
		return fmt.Sprintf("model %s rv=%s gen=%d mode=%s gates=%v | "+
			"production=%s floor=%d latest=%s history(%d, newest last)=[%s]%s",
			o.Name, o.ResourceVersion, o.Generation, o.Spec.Promotion.Mode, gates, optional(o.Status.ProductionVersion),
			o.Status.AutomaticPromotionFloor, optional(o.Status.LatestVersion), len(o.Status.History), strings.Join(hist, "; "),
			rolloutSummary(o.Status.Rollout))
	case *mlv1.ModelVersion:
		return fmt.Sprintf("version %s (v%d of %s) rv=%s gen=%d accuracy=%s spec.stage=%q | stage=%q observedStageRequest=%q",
			o.Name, o.Spec.Version, o.Spec.RegisteredModel, o.ResourceVersion, o.Generation,
			o.Spec.Metrics["test_accuracy"], o.Spec.Stage, o.Status.Stage, o.Status.ObservedStageRequest)
	case *appsv1.Deployment:
		return deploymentSummary(o)
	}
	return fmt.Sprintf("%T %s", o, o.GetName())
}

func rolloutSummary(st *mlv1.RolloutStatus) string {
	if st == nil {
		return ""
	}
	step := "-"
	if st.Step != nil {
		step = fmt.Sprint(*st.Step)
	}
	started := "-"
	if st.StepStartTime != nil {
		started = st.StepStartTime.UTC().Format("15:04:05")
	}
	return fmt.Sprintf(" rollout=v%d %s step=%s since=%s weight=%d", st.Version, st.Phase, step, started, st.Weight)
}

func optionalNumber(n *mlv1.Number) string {
	if n == nil {
		return "-"
	}
	return string(*n)
}

// manager is one operator process: its cache, and the real reconciler reading through it.
type manager struct {
	w     *world
	name  string
	cache *cache
	rec   *controller.RegisteredModelReconciler
	run   *run
}

// run is one reconcile in flight, in a goroutine of its own that proceeds one client call at a
// time when the scheduler lets it.
type run struct {
	model  string
	resume chan resume
	report chan report
	dead   bool
	writes int
	next   *call // the call it waits to make; nil before it started
	// epochs are the server's model epochs when the reconcile began.
	epochs map[string]int
}

type resume struct{ crash, applyFirst bool }

type report struct {
	done bool
	call call
	err  error
}

func (w *world) newManager(name string) *manager {
	m := &manager{w: w, name: name, cache: newCache(w.srv)}
	m.rec = w.newReconciler(m)
	w.managers = append(w.managers, m)
	return m
}

// newReconciler is the reconciler of m's process: a restarted process has a new one, with
// nothing of its measurer's or its pending writes' memory.
func (w *world) newReconciler(m *manager) *controller.RegisteredModelReconciler {
	rec := &controller.RegisteredModelReconciler{
		Client:           &managerClient{Client: w.srv.fake, m: m},
		APIReader:        &apiReader{m: m},
		Recorder:         nopRecorder{},
		Now:              w.now,
		PrometheusClient: &http.Client{Transport: w.prom},
	}
	rec.StartMeasurement = func(model types.NamespacedName, run func()) {
		w.measurements = append(w.measurements, measurement{m: m, rec: rec, model: model.Name, run: run})
		w.tracef("%s: starts measuring %s (queued for Prometheus)", m.name, model.Name)
	}
	return rec
}

var reconcileCtx = logf.IntoContext(context.Background(), logr.Discard())

// start begins a reconcile of model on m; it makes no call until the scheduler steps it.
func (w *world) start(m *manager, model string) {
	r := &run{model: model, resume: make(chan resume), report: make(chan report), epochs: maps.Clone(w.srv.epochs)}
	m.run = r
	w.tracef("%s: starts reconciling %s (cache behind by %d model and %d version events)", m.name, model,
		m.cache.lag(models), m.cache.lag(versions))
	go m.reconcile(r)
}

func (m *manager) reconcile(r *run) {
	var rep report
	defer func() {
		if p := recover(); p != nil {
			rep.err = fmt.Errorf("the reconciler panicked: %v\n%s", p, debug.Stack())
			m.w.violate(panicked, "%s: %v", m.name, rep.err)
		}
		rep.done = true
		r.report <- rep
	}()
	if (<-r.resume).crash {
		r.dead = true
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: r.model}}
	_, rep.err = m.rec.Reconcile(reconcileCtx, req)
}

// step lets m's reconcile make its next call.
func (w *world) step(m *manager) {
	r := m.run
	r.resume <- resume{}
	rep := <-r.report
	if !rep.done {
		r.next = &rep.call
		return
	}
	m.run = nil
	switch {
	case rep.err != nil:
		w.tracef("%s: reconcile of %s failed after %d writes: %v", m.name, r.model, r.writes, rep.err)
	default:
		w.tracef("%s: reconcile of %s done, %d writes", m.name, r.model, r.writes)
	}
}

// finish steps m's reconcile to its end and returns its writes and error.
func (w *world) finish(m *manager) (writes int, err error) {
	r := m.run
	for {
		r.resume <- resume{}
		rep := <-r.report
		if rep.done {
			m.run = nil
			w.tracef("%s: reconcile of %s ended, %d writes, error: %v", m.name, r.model, r.writes, rep.err)
			return r.writes, rep.err
		}
		r.next = &rep.call
	}
}

// crash stops m: the call its reconcile waits at is not made (or, with applyFirst and a write,
// made and then the process dies), the reconcile is abandoned, and m restarts with a cold cache.
func (w *world) crash(m *manager, applyFirst bool) {
	if r := m.run; r != nil {
		what := "before its first call"
		if r.next != nil {
			what = "at " + r.next.String()
			if applyFirst && r.next.write {
				what = "right after " + r.next.String()
			}
		}
		w.tracef("%s: CRASH %s", m.name, what)
		r.resume <- resume{crash: true, applyFirst: applyFirst}
		for rep := <-r.report; !rep.done; rep = <-r.report {
		}
		m.run = nil
	} else {
		w.tracef("%s: CRASH while idle", m.name)
	}
	m.cache = newCache(w.srv)
	m.rec = w.newReconciler(m)
	w.dropMeasurements(m)
	w.tracef("%s: restarts with a cold cache", m.name)
}

type verdict int

const (
	proceed verdict = iota
	die
	applyThenDie
)

// enter is the yield point of every client call: it parks the reconcile until the scheduler
// lets it proceed or crashes it.
func (m *manager) enter(c call) verdict {
	r := m.run
	if r.dead {
		return die
	}
	r.report <- report{call: c}
	msg := <-r.resume
	if !msg.crash {
		return proceed
	}
	r.dead = true
	if msg.applyFirst && c.write {
		return applyThenDie
	}
	return die
}

// read runs a read through the yield point and, for the API reader, the read faults.
func (m *manager) read(c call, fn func() error) error {
	if m.enter(c) != proceed {
		return errCrashed
	}
	w := m.w
	w.actor = m.name
	if err := w.fault(m, c); err != nil {
		w.tracef("%s: %s → %v", m.name, c, err)
		return err
	}
	err := fn()
	if w.tracing {
		w.tracef("%s: %s%s → %s", m.name, c, m.lagNote(c), resultNote(err))
	}
	return err
}

func (m *manager) lagNote(c call) string {
	if strings.HasPrefix(c.verb, "api-") || m.cache.fresh {
		return ""
	}
	if lag := m.cache.lag(c.kind); lag > 0 {
		return fmt.Sprintf(" (cache %d events behind)", lag)
	}
	return ""
}

func resultNote(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// write runs a write through the yield point, the crash and the write faults.
func (m *manager) write(c call, fn func() error) error {
	v := m.enter(c)
	if v == die {
		return errCrashed
	}
	w := m.w
	w.actor = m.name
	var injected error
	applied := true
	if v == proceed {
		if err := w.fault(m, c); err != nil {
			injected = err
			if !w.lastFaultApplied {
				applied = false
			}
		}
	}
	if !applied {
		w.tracef("%s: %s → %v (not applied)", m.name, c, injected)
		return injected
	}
	prev := w.srv.live[c.kind][c.key]
	err := fn()
	if err != nil {
		w.tracef("%s: %s → %v", m.name, c, err)
		return err
	}
	w.tracef("%s: %s → applied", m.name, c)
	m.run.writes++
	w.writer = m.run
	w.srv.record(c.kind, c.key)
	w.writer = nil
	cur := w.srv.live[c.kind][c.key]
	if prev != nil && cur != nil && !equality.Semantic.DeepEqual(specOf(prev), specOf(cur)) {
		w.violate(specWritten, "%s changed the spec of %s %s: the operator never writes spec", m.name, c.kind, c.key.Name)
	}
	switch {
	case v == applyThenDie:
		w.tracef("%s: dies right after the write", m.name)
		return errCrashed
	case injected != nil:
		w.tracef("%s: ... but the call returns %v", m.name, injected)
		return injected
	}
	return nil
}

// fault returns the error a call fails with, if any: a scripted rule first, then the
// schedule's rates. lastFaultApplied says whether a write is applied before the error.
func (w *world) fault(m *manager, c call) error {
	w.lastFaultApplied = false
	for _, r := range w.rules {
		if r.times > 0 && (r.manager == "" || r.manager == m.name) && r.match(c) {
			r.times--
			w.lastFaultApplied = r.applied
			return r.err
		}
	}
	gr := resource(c.kind)
	switch {
	case !c.write && strings.HasPrefix(c.verb, "api-") && w.faults.read > 0 && w.rng.Float64() < w.faults.read:
		return w.transient(gr, c)
	case c.write && w.faults.write > 0 && w.rng.Float64() < w.faults.write:
		return w.transient(gr, c)
	case c.write && w.faults.commit > 0 && w.rng.Float64() < w.faults.commit:
		w.lastFaultApplied = true
		return apierrors.NewTimeoutError("the request was committed but its response timed out", 1)
	}
	return nil
}

func (w *world) transient(gr schema.GroupResource, c call) error {
	switch w.rng.IntN(4) {
	case 0:
		if c.write {
			return apierrors.NewConflict(gr, c.key.Name, errors.New("injected conflict"))
		}
		fallthrough
	case 1:
		return apierrors.NewTooManyRequests("injected throttling", 1)
	case 2:
		return apierrors.NewInternalError(errors.New("injected internal error"))
	}
	return apierrors.NewServiceUnavailable("injected unavailability")
}

// managerClient is a manager's client: reads from its cache, writes to the server through the
// faults; every call is a yield point.
type managerClient struct {
	client.Client // the server's, for Scheme and RESTMapper; every read and write is overridden
	m             *manager
}

// objCall is a write of obj.
func objCall(verb string, obj client.Object) call {
	k, _ := kindOf(obj)
	return call{verb: verb, kind: k, key: client.ObjectKeyFromObject(obj), write: true}
}

func listCall(verb string, list client.ObjectList, opts []client.ListOption) call {
	k, _ := kindOf(list)
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	name := ""
	if lo.FieldSelector != nil {
		name = lo.FieldSelector.String()
	}
	return call{verb: verb, kind: k, key: client.ObjectKey{Namespace: lo.Namespace, Name: name}}
}

func (c *managerClient) checkKind(obj runtime.Object) error {
	if _, ok := kindOf(obj); !ok {
		return fmt.Errorf("explore: the reconciler used a %T, which the explorer does not model", obj)
	}
	return nil
}

func (c *managerClient) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if err := c.checkKind(obj); err != nil {
		return err
	}
	k, _ := kindOf(obj)
	return c.m.read(call{verb: "get", kind: k, key: key}, func() error { return c.m.cache.get(key, obj) })
}

func (c *managerClient) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if pods, ok := list.(*corev1.PodList); ok {
		pods.Items = nil // pods are not modelled: no kubelet reports a problem
		return nil
	}
	if err := c.checkKind(list); err != nil {
		return err
	}
	return c.m.read(listCall("list", list, opts), func() error { return c.m.cache.list(list, opts...) })
}

func (c *managerClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.checkKind(obj); err != nil {
		return err
	}
	return c.m.write(objCall("create", obj), func() error { return c.m.w.srv.fake.Create(ctx, obj, opts...) })
}

func (c *managerClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.checkKind(obj); err != nil {
		return err
	}
	return c.m.write(objCall("update", obj), func() error { return c.m.w.srv.fake.Update(ctx, obj, opts...) })
}

func (c *managerClient) Patch(ctx context.Context, obj client.Object, patch client.Patch,
	opts ...client.PatchOption) error {
	if err := c.checkKind(obj); err != nil {
		return err
	}
	return c.m.write(objCall("patch", obj), func() error { return c.m.w.srv.fake.Patch(ctx, obj, patch, opts...) })
}

func (c *managerClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := c.checkKind(obj); err != nil {
		return err
	}
	if k, _ := kindOf(obj); k.served() {
		do := (&client.DeleteOptions{}).ApplyOptions(opts)
		var uid *types.UID
		if do.Preconditions != nil {
			uid = do.Preconditions.UID
		}
		return c.m.write(objCall("delete", obj), func() error {
			return c.m.w.srv.deleteServed(k, client.ObjectKeyFromObject(obj), uid)
		})
	}
	return c.m.write(objCall("delete", obj), func() error { return c.m.w.srv.fake.Delete(ctx, obj, opts...) })
}

func (c *managerClient) DeleteAllOf(context.Context, client.Object, ...client.DeleteAllOfOption) error {
	return errors.New("explore: DeleteAllOf is not modelled")
}

// Apply is server-side apply of a Deployment or a Service, forcing ownership: Podium is the only
// manager of their metadata and spec, so the applied object replaces both (serving.go).
func (c *managerClient) Apply(_ context.Context, ac runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	u, ok := ac.(interface{ UnstructuredContent() map[string]any })
	if !ok {
		return fmt.Errorf("explore: only unstructured apply configurations are modelled, not %T", ac)
	}
	obj, err := typed(u.UnstructuredContent())
	if err != nil {
		return err
	}
	k, _ := kindOf(obj)
	key := client.ObjectKeyFromObject(obj)
	if ao := (&client.ApplyOptions{}).ApplyOptions(opts); len(ao.DryRun) > 0 {
		// A dry run changes nothing; the explorer's server accepts every rendering.
		return c.m.read(call{verb: "api-dry-run-apply", kind: k, key: key}, func() error { return nil })
	}
	return c.m.write(call{verb: "apply", kind: k, key: key, write: true}, func() error {
		c.m.w.srv.apply(k, obj)
		return nil
	})
}

func (c *managerClient) Status() client.SubResourceWriter { return &statusWriter{c: c} }

func (c *managerClient) SubResource(sub string) client.SubResourceClient {
	return &statusWriter{c: c, sub: sub}
}

// statusWriter writes the status subresource through the manager's faults.
type statusWriter struct {
	c   *managerClient
	sub string
}

func (s *statusWriter) checkSubresource() error {
	if s.sub != "" && s.sub != "status" {
		return fmt.Errorf("explore: subresource %q is not modelled", s.sub)
	}
	return nil
}

func (s *statusWriter) Get(context.Context, client.Object, client.Object, ...client.SubResourceGetOption) error {
	return errors.New("explore: subresource reads are not modelled")
}

func (s *statusWriter) Create(context.Context, client.Object, client.Object, ...client.SubResourceCreateOption) error {
	return errors.New("explore: subresource create is not modelled")
}

func (s *statusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if err := s.checkSubresource(); err != nil {
		return err
	}
	if err := s.c.checkKind(obj); err != nil {
		return err
	}
	return s.c.m.write(objCall("status-update", obj), func() error {
		return s.c.m.w.srv.fake.Status().Update(ctx, obj, opts...)
	})
}

func (s *statusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch,
	opts ...client.SubResourcePatchOption) error {
	if err := s.checkSubresource(); err != nil {
		return err
	}
	if err := s.c.checkKind(obj); err != nil {
		return err
	}
	return s.c.m.write(objCall("status-patch", obj), func() error {
		return s.c.m.w.srv.fake.Status().Patch(ctx, obj, patch, opts...)
	})
}

func (s *statusWriter) Apply(context.Context, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
	return errors.New("explore: server-side apply of status is not modelled")
}

// apiReader reads the server itself, fresh, through the yield point and the read faults.
type apiReader struct{ m *manager }

func (a *apiReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	switch o := obj.(type) {
	case *metav1.PartialObjectMetadata:
		return a.metadata(key, o)
	case *gatewayv1.HTTPRoute:
		return a.m.read(call{verb: "api-get", kind: routes, key: key}, func() error {
			got, err := a.m.w.srv.read(routes, key)
			if err != nil {
				return err
			}
			got.(*gatewayv1.HTTPRoute).DeepCopyInto(o)
			return nil
		})
	}
	k, ok := kindOf(obj)
	if !ok {
		return fmt.Errorf("explore: the APIReader read a %T, which the explorer does not model", obj)
	}
	return a.m.read(call{verb: "api-get", kind: k, key: key}, func() error {
		return a.m.w.srv.fake.Get(ctx, key, obj, opts...)
	})
}

func (a *apiReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := kindOf(list); !ok {
		return fmt.Errorf("explore: the APIReader listed %T, which the explorer does not model", list)
	}
	return a.m.read(listCall("api-list", list, opts), func() error {
		return a.m.w.srv.fake.List(ctx, list, opts...)
	})
}

// metadata reads the metadata of a Deployment or Service from the server, as a metadata-only
// client does; other kinds (claims) do not exist.
func (a *apiReader) metadata(key client.ObjectKey, into *metav1.PartialObjectMetadata) error {
	var k kind
	switch into.Kind {
	case "Deployment":
		k = deployments
	case "Service":
		k = services
	default:
		return a.m.read(call{verb: "api-get-metadata", kind: records, key: key}, func() error {
			return apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(into.Kind) + "s"}, key.Name)
		})
	}
	return a.m.read(call{verb: "api-get-metadata", kind: k, key: key}, func() error {
		o, err := a.m.w.srv.read(k, key)
		if err != nil {
			return err
		}
		gvk := into.GroupVersionKind()
		into.ObjectMeta = *o.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta).DeepCopy()
		into.SetGroupVersionKind(gvk)
		return nil
	})
}

// nopRecorder drops Events.
type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

func (nopRecorder) AnnotatedEventf(runtime.Object, runtime.Object, map[string]string,
	string, string, string, string, ...any) {
}
