package explore

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/controller"
	"github.com/podium-dev/podium/internal/promotion"
	"github.com/podium-dev/podium/internal/serving"
)

// servingMode is what a schedule's models serve.
type servingMode int

const (
	// noServing: no model has spec.serving; no Deployment is involved.
	noServing servingMode = iota
	// replaceServing: models serve, and a new Production version replaces the pods at once.
	replaceServing
	// canaryServing: most models roll new versions out as canaries, measured by Prometheus.
	canaryServing
)

func (s servingMode) String() string { return [...]string{"none", "Replace", "Canary"}[s] }

// The server keeps Deployments and Services itself. Every write makes a new object: those in
// the store, the live map and the logs are never mutated.

// typed converts an applied object to its type.
func typed(content map[string]any) (client.Object, error) {
	var obj client.Object
	switch content["kind"] {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "Service":
		obj = &corev1.Service{}
	case "HTTPRoute":
		obj = &gatewayv1.HTTPRoute{}
	default:
		return nil, fmt.Errorf("explore: applying a %v is not modelled", content["kind"])
	}
	return obj, runtime.DefaultUnstructuredConverter.FromUnstructured(content, obj)
}

// apply stores an applied Deployment or Service: its metadata and spec as applied, its status,
// UID, creation time and generation kept, the generation moved when the spec changes.
func (s *server) apply(k kind, applied client.Object) {
	key := client.ObjectKeyFromObject(applied)
	prev := s.store[k][key]
	now := s.w.clk.t
	var obj client.Object
	switch o := applied.(type) {
	case *appsv1.Deployment:
		d := o.DeepCopy()
		d.Generation = 1
		if p, ok := prev.(*appsv1.Deployment); ok {
			d.UID, d.CreationTimestamp, d.Generation, d.Status = p.UID, p.CreationTimestamp, p.Generation, *p.Status.DeepCopy()
			if !equality.Semantic.DeepEqual(p.Spec, d.Spec) {
				d.Generation++
				s.rolled[key] = now
			}
			if !equality.Semantic.DeepEqual(p.Spec.Template, d.Spec.Template) {
				s.templateGen[key] = d.Generation
			}
		} else {
			s.uids++
			d.UID = types.UID(fmt.Sprintf("uid-%d", s.uids))
			d.CreationTimestamp = metav1.NewTime(now)
			s.rolled[key], s.templateGen[key] = now, 1
		}
		obj = d
	case *corev1.Service:
		svc := o.DeepCopy()
		if p, ok := prev.(*corev1.Service); ok {
			svc.UID, svc.CreationTimestamp = p.UID, p.CreationTimestamp
		} else {
			s.uids++
			svc.UID = types.UID(fmt.Sprintf("uid-%d", s.uids))
			svc.CreationTimestamp = metav1.NewTime(now)
		}
		obj = svc
	case *gatewayv1.HTTPRoute:
		route := o.DeepCopy()
		if p, ok := prev.(*gatewayv1.HTTPRoute); ok {
			route.UID, route.CreationTimestamp = p.UID, p.CreationTimestamp
		} else {
			s.uids++
			route.UID = types.UID(fmt.Sprintf("uid-%d", s.uids))
			route.CreationTimestamp = metav1.NewTime(now)
		}
		obj = route
	}
	s.rv++
	obj.SetResourceVersion("s" + strconv.Itoa(s.rv))
	s.store[k][key] = obj
}

// deleteServed deletes a Deployment or Service, with the UID precondition when uid is set.
func (s *server) deleteServed(k kind, key client.ObjectKey, uid *types.UID) error {
	o, ok := s.store[k][key]
	switch {
	case !ok:
		return apierrors.NewNotFound(resource(k), key.Name)
	case uid != nil && *uid != o.GetUID():
		return apierrors.NewConflict(resource(k), key.Name,
			fmt.Errorf("the UID in the precondition (%s) does not match %s", *uid, o.GetUID()))
	}
	delete(s.store[k], key)
	return nil
}

// setStatus writes a Deployment's status, as the Deployment controller does.
func (s *server) setStatus(key client.ObjectKey, st appsv1.DeploymentStatus) {
	d := s.store[deployments][key].(*appsv1.Deployment).DeepCopy()
	d.Status = st
	s.rv++
	d.SetResourceVersion("s" + strconv.Itoa(s.rv))
	s.store[deployments][key] = d
	s.record(deployments, key)
}

// served lists the Deployments or Services of the store by key.
func (s *server) served(k kind) []client.Object {
	keys := slices.SortedFunc(maps.Keys(s.store[k]), func(a, b client.ObjectKey) int {
		return strings.Compare(a.Name, b.Name)
	})
	out := make([]client.Object, 0, len(keys))
	for _, key := range keys {
		out = append(out, s.store[k][key])
	}
	return out
}

// route is the model's HTTPRoute, nil when there is none.
func (s *server) route(model string) *gatewayv1.HTTPRoute {
	r, _ := s.store[routes][client.ObjectKey{Namespace: ns, Name: serving.RouteName(model)}].(*gatewayv1.HTTPRoute)
	return r
}

func (s *server) deployment(name string) *appsv1.Deployment {
	d, _ := s.store[deployments][client.ObjectKey{Namespace: ns, Name: name}].(*appsv1.Deployment)
	return d
}

// The world plays the cluster's other controllers: the Deployment controller and the garbage
// collector.

// hash is a number in [0, 100) that depends only on the seed and the parts, so that a version's
// behaviour does not depend on the order in which the schedule meets it.
func (w *world) hash(parts ...string) int {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%d", w.seed)
	for _, p := range parts {
		_, _ = fmt.Fprintf(h, "/%s", p)
	}
	return int(h.Sum64() % 100)
}

// neverReady says whether the pods of a model's version never become ready: its rollout, or its
// canary, misses the progress deadline.
func (w *world) neverReady(model, version string) bool {
	return w.hash("pods", model, version) < 8
}

// deploymentStatus is the status the Deployment controller writes for d: all its replicas
// updated and available, or, for pods that never become ready, none available and, past the
// progress deadline, the Progressing condition False with reason ProgressDeadlineExceeded.
// Partway, some of them available, never fewer than the status counts for the same template.
func (w *world) deploymentStatus(d *appsv1.Deployment, partway bool) appsv1.DeploymentStatus {
	key := client.ObjectKeyFromObject(d)
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n}
	progressing := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
		Reason: "NewReplicaSetAvailable"}
	if w.neverReady(d.Labels[serving.LabelModel], d.Spec.Template.Annotations[serving.AnnotationVersion]) {
		deadline := 600 * time.Second
		if d.Spec.ProgressDeadlineSeconds != nil {
			deadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
		}
		progressing.Reason = "ReplicaSetUpdated"
		if !w.clk.t.Before(w.srv.rolled[key].Add(deadline)) {
			progressing.Status, progressing.Reason = corev1.ConditionFalse, "ProgressDeadlineExceeded"
		}
		st.Conditions = []appsv1.DeploymentCondition{progressing}
		return st
	}
	st.ReadyReplicas, st.AvailableReplicas = n, n
	if partway && n > 0 {
		low := int32(0)
		if d.Status.ObservedGeneration >= w.srv.templateGen[key] {
			low = min(d.Status.AvailableReplicas, n)
		}
		st.AvailableReplicas = low + int32(w.rng.IntN(int(n-low)+1))
		st.ReadyReplicas = st.AvailableReplicas
		if st.AvailableReplicas < n {
			progressing.Reason = "ReplicaSetUpdated"
		}
	}
	st.Conditions = []appsv1.DeploymentCondition{progressing}
	return st
}

// playDeployment has the Deployment controller act on d; it reports whether the status changed.
func (w *world) playDeployment(d *appsv1.Deployment, partway bool) bool {
	st := w.deploymentStatus(d, partway)
	if equality.Semantic.DeepEqual(st, d.Status) {
		return false
	}
	w.actor = "deployment controller"
	w.tracef("deployment controller: updates the status of %s", d.Name)
	w.srv.setStatus(client.ObjectKeyFromObject(d), st)
	return true
}

// playDeployments has the Deployment controller act on every Deployment, fully, once time has
// run to the progress deadline of any whose pods never become ready; it returns how many
// statuses changed.
func (w *world) playDeployments() int {
	changed := 0
	for _, o := range w.srv.served(deployments) {
		d := o.(*appsv1.Deployment)
		if w.neverReady(d.Labels[serving.LabelModel], d.Spec.Template.Annotations[serving.AnnotationVersion]) {
			deadline := 600 * time.Second
			if d.Spec.ProgressDeadlineSeconds != nil {
				deadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
			}
			if at := w.srv.rolled[client.ObjectKeyFromObject(d)].Add(deadline); w.clk.t.Before(at) {
				w.tracef("time passes: %v, to the progress deadline of %s", at.Sub(w.clk.t), d.Name)
				w.clk.t = at
			}
		}
		if w.playDeployment(d, false) {
			changed++
		}
	}
	return changed
}

// collectGarbage deletes the Deployments and Services whose controller is no model that exists,
// as the garbage collector does once their model is deleted.
func (w *world) collectGarbage() {
	for _, k := range []kind{deployments, services, routes} {
		for _, o := range w.srv.served(k) {
			owner := metav1.GetControllerOf(o)
			if owner == nil {
				continue
			}
			if m := w.srv.model(owner.Name); m != nil && m.UID == owner.UID {
				continue
			}
			w.actor = "garbage collector"
			w.tracef("garbage collector: deletes %s %s, whose model is gone", k, o.GetName())
			key := client.ObjectKeyFromObject(o)
			if err := w.srv.deleteServed(k, key, nil); err == nil {
				w.srv.record(k, key)
			}
		}
	}
}

// Prometheus answers each query at once from what the schedule drew for the measurement, so
// that the measurer's goroutines, which the world waits for, answer the same whatever their
// order.

// Answers a query can get.
type answerKind int

const (
	pass answerKind = iota
	fail
	unavailable // 503
	empty       // no series
	stale       // a passing value, sampled before the step began
)

func (a answerKind) String() string {
	return [...]string{"pass", "fail", "503", "empty", "stale"}[a]
}

// The two metric families of the queries, by metric: a value for each kind of answer.
var families = map[string]struct {
	metric    string
	good, bad string
	bound     string
}{
	"explore_error_ratio":     {metric: "error-rate", good: "0.001", bad: "0.2", bound: "0.01"},
	"explore_latency_seconds": {metric: "p99-latency", good: "0.1", bad: "0.9", bound: "0.25"},
}

var queryPattern = regexp.MustCompile(`^max\((explore_[a-z_]+)\{model="([a-z0-9-]+)",version="([0-9]+)"\}\)$`)

// answerKey is what an answer was about.
type answerKey struct {
	model   string
	version int64
	family  string
}

type answer struct {
	answerKey
	kind answerKind
	at   time.Time
}

// measurement is one that a manager's measurer started and Prometheus has not answered.
type measurement struct {
	m     *manager
	rec   *controller.RegisteredModelReconciler
	model string
	run   func()
}

// prometheus is the schedule's Prometheus, an http.RoundTripper. While the world runs one
// measurement, draws holds, per metric family, the number that picks the answer.
type prometheus struct {
	w       *world
	mu      sync.Mutex
	draws   map[string]int
	answers []answer
	// forced, when set for a family, is the answer every query of it gets (scripted schedules).
	forced map[string]answerKind
}

// kindFor picks an answer from a version's profile, which the seed fixes: most versions answer
// well, some badly, some flakily and some never (Prometheus fails for them).
func (w *world) kindFor(model string, version int64, draw int) answerKind {
	switch profile := w.hash("answers", model, strconv.FormatInt(version, 10)); {
	case profile < 55: // good
		return pick(draw, []answerKind{pass, unavailable, empty, stale}, 85, 90, 95)
	case profile < 80: // bad
		return pick(draw, []answerKind{fail, pass, unavailable}, 80, 90)
	case profile < 92: // flaky
		return pick(draw, []answerKind{pass, unavailable, empty, stale}, 40, 70, 85)
	}
	return unavailable
}

// pick is kinds[i] for the first bound draw is under, the last kind above them all.
func pick(draw int, kinds []answerKind, bounds ...int) answerKind {
	for i, b := range bounds {
		if draw < b {
			return kinds[i]
		}
	}
	return kinds[len(kinds)-1]
}

func (p *prometheus) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.ParseForm(); err != nil {
		return respond(req, http.StatusBadRequest,
			fmt.Sprintf(`{"status":"error","errorType":"bad_data","error":%q}`, err.Error())), nil
	}
	got := queryPattern.FindStringSubmatch(req.Form.Get("query"))
	if got == nil {
		return respond(req, http.StatusBadRequest,
			`{"status":"error","errorType":"bad_data","error":"explore: unknown query"}`), nil
	}
	family, model := got[1], got[2]
	version, _ := strconv.ParseInt(got[3], 10, 64)
	p.mu.Lock()
	kind, ok := p.forced[family]
	if !ok {
		kind = p.w.kindFor(model, version, p.draws[family])
	}
	now := p.w.clk.t
	p.answers = append(p.answers,
		answer{answerKey: answerKey{model: model, version: version, family: family}, kind: kind, at: now})
	p.mu.Unlock()
	value, at := families[family].good, now
	switch kind {
	case unavailable:
		return respond(req, http.StatusServiceUnavailable,
			`{"status":"error","errorType":"unavailable","error":"explore: Prometheus is unavailable"}`), nil
	case empty:
		return respond(req, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`), nil
	case fail:
		value = families[family].bad
	case stale:
		at = now.Add(-time.Hour)
	}
	return respond(req, http.StatusOK, fmt.Sprintf(
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,%q]}]}}`,
		at.Unix(), value)), nil
}

func respond(req *http.Request, code int, body string) *http.Response {
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewBufferString(body)),
		ContentLength: int64(len(body)), Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// answerOne has Prometheus answer the i-th measurement still waiting: the measurer's queries
// run now, and the world waits for them to end and for the measurer to keep their results.
func (w *world) answerOne(i int) {
	ms := w.measurements[i]
	w.measurements = slices.Delete(w.measurements, i, i+1)
	w.prom.draws = map[string]int{}
	for _, f := range slices.Sorted(maps.Keys(families)) {
		w.prom.draws[f] = w.rng.IntN(100)
	}
	w.prom.answers = nil
	ms.run()
	slices.SortFunc(w.prom.answers, func(a, b answer) int { return strings.Compare(a.family, b.family) })
	parts := make([]string, 0, len(w.prom.answers))
	for _, a := range w.prom.answers {
		w.answered[a.answerKey] = append(w.answered[a.answerKey], a)
		parts = append(parts, fmt.Sprintf("%s v%d: %s", a.family, a.version, a.kind))
	}
	w.tracef("prometheus: answers %s's measurement of %s: %s", ms.m.name, ms.model, strings.Join(parts, "; "))
}

// answerAll answers every measurement waiting and returns how many there were.
func (w *world) answerAll() int {
	n := 0
	for len(w.measurements) > 0 {
		w.answerOne(0)
		n++
	}
	return n
}

// dropMeasurements forgets the measurements of m's process, which died with it.
func (w *world) dropMeasurements(m *manager) {
	w.measurements = slices.DeleteFunc(w.measurements, func(x measurement) bool { return x.m == m })
}

// The models' serving.

// servingSpec is the spec.serving of a new model in this schedule: nil without serving; with
// canaries, most models get a rollout of one to three steps measured by one or two metrics.
func (w *world) servingSpec() *mlv1.Serving {
	if w.serving == noServing {
		return nil
	}
	s := &mlv1.Serving{
		Replicas: new(int32(2 + w.rng.IntN(3))),
		Fetch:    new(false),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "predictor", Image: "registry.example.com/predictor:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
		}}}},
		ProgressDeadlineSeconds: new(int32(20 + 10*w.rng.IntN(3))),
	}
	if w.serving == canaryServing && w.rng.IntN(5) > 0 {
		s.Rollout = w.canary()
	}
	s.Staging = w.rng.IntN(3) == 0
	return s
}

// canary is a valid Canary rollout: increasing weights among 10, 25, 50 and 100, short steps,
// an analysis of one or two metrics whose queries name the model and the version, and in a third
// of them a bake.
func (w *world) canary() *mlv1.Rollout {
	weights := []int32{10, 25, 50, 100}
	n := 1 + w.rng.IntN(3)
	picked := make([]int32, 0, n)
	for _, i := range w.rng.Perm(len(weights))[:n] {
		picked = append(picked, weights[i])
	}
	slices.Sort(picked)
	r := &mlv1.Rollout{Strategy: mlv1.RolloutCanary, Analysis: &mlv1.Analysis{
		Prometheus:        mlv1.Prometheus{Address: "http://prometheus.monitoring:9090"},
		Interval:          metav1.Duration{Duration: time.Duration(3+2*w.rng.IntN(2)) * time.Second},
		InconclusiveLimit: 3,
	}}
	for _, weight := range picked {
		r.Steps = append(r.Steps, mlv1.RolloutStep{Weight: weight,
			Duration: metav1.Duration{Duration: time.Duration(5+5*w.rng.IntN(3)) * time.Second}})
	}
	fams := slices.Sorted(maps.Keys(families))
	if w.rng.IntN(2) == 0 {
		fams = fams[:1]
	}
	for _, f := range fams {
		r.Analysis.Metrics = append(r.Analysis.Metrics, mlv1.AnalysisMetric{
			Name:  families[f].metric,
			Query: fmt.Sprintf(`max(%s{model="{{.Model}}",version="{{.Version}}"})`, f),
			Max:   num(families[f].bound),
		})
	}
	if w.rng.IntN(3) == 0 {
		// The analysis goes on after the promotion; a failure then restores the version before.
		r.Bake = &metav1.Duration{Duration: time.Duration(5+5*w.rng.IntN(2)) * time.Second}
	}
	if w.rng.IntN(3) == 0 {
		// Exact weights on an HTTPRoute, and in half of those a shadow phase first.
		r.Traffic = &mlv1.Traffic{GatewayAPI: &mlv1.GatewayAPITraffic{ParentRefs: []mlv1.ParentReference{{Name: "gateway"}}}}
		if w.rng.IntN(2) == 0 {
			r.Shadow = &mlv1.Shadow{Percent: 50, Duration: metav1.Duration{Duration: 5 * time.Second}}
		}
	}
	return r
}

// canaryShare is how much of the route's traffic reaches the canary Service: the weight of its
// backend, and the percent mirrored to it.
func canaryShare(route *gatewayv1.HTTPRoute) (weight, mirror int32) {
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if strings.HasSuffix(string(b.Name), "-canary") && b.Weight != nil {
				weight += *b.Weight
			}
		}
		for _, f := range rule.Filters {
			if f.RequestMirror != nil && f.RequestMirror.Percent != nil {
				mirror += *f.RequestMirror.Percent
			}
		}
	}
	return weight, mirror
}

// checkRouteServed checks, after a write of a model's route or canary Deployment, that the route
// sends or mirrors requests to the canary Service only while canary pods are available behind it.
func (w *world) checkRouteServed(model string) {
	route := w.srv.route(model)
	if route == nil {
		return
	}
	weight, mirror := canaryShare(route)
	if weight == 0 && mirror == 0 {
		return
	}
	if c := w.srv.deployment(serving.CanaryName(model)); c == nil || c.Status.AvailableReplicas == 0 {
		w.violate(routeToNothing, "the route of %s sends %d%% and mirrors %d%% of the requests to the canary Service, "+
			"with no canary pod available behind it", model, weight, mirror)
	}
}

// canaryOf is the model's canary rollout spec, nil when it has none.
func canaryOf(m *mlv1.RegisteredModel) *mlv1.Rollout {
	if m.Spec.Serving == nil || m.Spec.Serving.Replicas == nil || m.Spec.Serving.Rollout == nil ||
		m.Spec.Serving.Rollout.Strategy != mlv1.RolloutCanary {
		return nil
	}
	return m.Spec.Serving.Rollout
}

// A person's requests about a canary.

func (w *world) annotate(k kind, name, key, value string) {
	w.userErr(w.srv.updateSpec(k, name, func(o client.Object) {
		a := maps.Clone(o.GetAnnotations())
		if a == nil {
			a = map[string]string{}
		}
		if value == "" {
			delete(a, key)
		} else {
			a[key] = value
		}
		o.SetAnnotations(a)
	}))
}

// randomRolloutRequest pauses, resumes, aborts, rolls back or skips the canary of a model with a
// canary rollout; it reports whether it did anything.
func (w *world) randomRolloutRequest(model string, all []*mlv1.ModelVersion) bool {
	m := w.srv.model(model)
	if m == nil || canaryOf(m) == nil {
		return false
	}
	var vs []*mlv1.ModelVersion
	for _, v := range all {
		if v.Spec.RegisteredModel == model {
			vs = append(vs, v)
		}
	}
	st := m.Status.Rollout
	switch w.rng.IntN(5) {
	case 0:
		w.user("pauses the canary of %s", model)
		w.annotate(models, model, mlv1.AnnotationPauseRollout, "true")
	case 1:
		w.user("resumes the canary of %s", model)
		w.annotate(models, model, mlv1.AnnotationPauseRollout, "")
	case 2:
		if !st.Canary() {
			return false
		}
		for _, v := range vs {
			if string(v.UID) == st.VersionUID {
				w.user("aborts the canary of %s", model)
				w.requestStage(v.Name, mlv1.StageArchived)
				return true
			}
		}
		return false
	case 3:
		var older []*mlv1.ModelVersion
		for _, v := range vs {
			if p := m.Status.ProductionVersion; p != nil && v.Spec.Version < *p {
				older = append(older, v)
			}
		}
		if len(older) == 0 {
			return false
		}
		v := older[w.rng.IntN(len(older))]
		w.user("rolls %s back to %s", model, v.Name)
		if v.Spec.Stage == mlv1.StageProduction {
			w.requestStage(v.Name, "")
		}
		w.requestStage(v.Name, mlv1.StageProduction)
	default:
		if len(vs) == 0 {
			return false
		}
		v := vs[w.rng.IntN(len(vs))]
		w.user("promotes %s skipping the canary", v.Name)
		w.annotate(versions, v.Name, mlv1.AnnotationSkipRollout, "true")
		if v.Spec.Stage == mlv1.StageProduction {
			w.requestStage(v.Name, "")
		}
		w.requestStage(v.Name, mlv1.StageProduction)
	}
	return true
}

// changeServing has a person change a model's spec.serving: its pod template (a new image of
// the predictor, while a canary runs, maybe), its replicas, or, with canaries, its rollout
// removed (in the middle of a canary, maybe) or a new one added.
func (w *world) changeServing(model string) {
	m := w.srv.model(model)
	if w.rng.IntN(4) == 0 {
		image := fmt.Sprintf("registry.example.com/predictor:%d", 2+w.rng.IntN(3))
		w.canaries["template"]++
		w.user("changes the predictor image of model %s to %s (%s)", model, image, rolloutSummary(m.Status.Rollout))
		w.userErr(w.srv.updateSpec(models, model, func(o client.Object) {
			o.(*mlv1.RegisteredModel).Spec.Serving.Template.Spec.Containers[0].Image = image
		}))
		return
	}
	switch r := w.rng.IntN(3); {
	case m.Spec.Serving.Rollout != nil && m.Status.Rollout.Canary() && r > 0:
		w.canaries["removed"]++
		w.user("removes the rollout of model %s in the middle of its canary (%s)", model, rolloutSummary(m.Status.Rollout))
		w.setRollout(model, nil)
	case r == 0 || w.serving != canaryServing:
		n := int32(2 + w.rng.IntN(3))
		w.user("scales model %s to %d replicas", model, n)
		w.userErr(w.srv.updateSpec(models, model, func(o client.Object) {
			o.(*mlv1.RegisteredModel).Spec.Serving.Replicas = new(n)
		}))
	case m.Spec.Serving.Rollout != nil:
		w.user("removes the rollout of model %s (%s)", model, rolloutSummary(m.Status.Rollout))
		w.setRollout(model, nil)
	default:
		ro := w.canary()
		w.user("gives model %s a canary rollout", model)
		w.setRollout(model, ro)
	}
}

func (w *world) setRollout(model string, ro *mlv1.Rollout) {
	w.userErr(w.srv.updateSpec(models, model, func(o client.Object) {
		o.(*mlv1.RegisteredModel).Spec.Serving.Rollout = ro
	}))
}

// servingStep is one of the scheduler's steps for the cluster around the operator, in a
// schedule with serving: the Deployment controller acts, Prometheus answers a measurement, the
// garbage collector runs, or time passes. It reports whether it took the step.
func (w *world) servingStep() bool {
	switch r := w.rng.IntN(100); {
	case r < 8:
		if ds := w.srv.served(deployments); len(ds) > 0 {
			w.playDeployment(ds[w.rng.IntN(len(ds))].(*appsv1.Deployment), w.rng.IntN(3) == 0)
		}
	case r < 13:
		if len(w.measurements) > 0 {
			w.answerOne(w.rng.IntN(len(w.measurements)))
		}
	case r < 14:
		w.collectGarbage()
	case r < 17:
		d := time.Duration(1+w.rng.IntN(10)) * time.Second
		w.clk.t = w.clk.t.Add(d)
		w.tracef("time passes: %v", d)
	default:
		return false
	}
	return true
}

// Checks.

// servingPods is how many pods of a Deployment serve: those available, no more than it asks for.
func servingPods(o client.Object) int32 {
	d, ok := o.(*appsv1.Deployment)
	if !ok || d == nil {
		return 0
	}
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	return min(n, d.Status.AvailableReplicas)
}

// checkCapacity checks a Podium write of a model's stable or canary Deployment against surge
// before shrink: the write never makes fewer pods serve than spec.serving.replicas, unless
// fewer already did, and then never fewer than before. With no Production version the canary
// goes at once, by design.
func (w *world) checkCapacity(prev, cur client.Object) {
	obj := cur
	if obj == nil {
		obj = prev
	}
	model := obj.GetLabels()[serving.LabelModel]
	m := w.srv.model(model)
	if m == nil || m.Spec.Serving == nil || m.Spec.Serving.Replicas == nil || m.Status.ProductionVersion == nil {
		return
	}
	var other string
	switch obj.GetName() {
	case serving.DeploymentName(model):
		other = serving.CanaryName(model)
	case serving.CanaryName(model):
		other = serving.DeploymentName(model)
	default:
		return
	}
	replicas := *m.Spec.Serving.Replicas
	rest := servingPods(w.srv.deployment(other))
	before, after := servingPods(prev)+rest, servingPods(cur)+rest
	if after < before && after < replicas {
		what := "changed"
		if cur == nil {
			what = "deleted"
		}
		w.violate(capacityDropped, "%s %s %s: %d pods of model %s serve, %d before, and spec.serving.replicas is %d",
			w.actor, what, obj.GetName(), after, model, before, replicas)
	}
}

// checkAnalysisPassed checks a version that enters Production because its canary passed: for
// every metric, Prometheus answered a passing value for that version at least once per step
// since its rollout began. Each step ends only on a measurement of each metric that passed,
// taken for that step (failureLimit is 0), so fewer passing answers mean it was promoted on
// measurements of something else.
func (w *world) checkAnalysisPassed(v *mlv1.ModelVersion, m *mlv1.RegisteredModel) {
	var reason mlv1.HistoryReason
	for _, h := range m.Status.History {
		if h.Version == v.Spec.Version && h.To == mlv1.StageProduction {
			reason = h.Reason
		}
	}
	spec, st := canaryOf(m), m.Status.Rollout
	if reason != mlv1.ReasonAnalysisPassed || spec == nil || spec.Analysis == nil {
		return
	}
	if st == nil || st.Version != v.Spec.Version || st.StartTime == nil {
		w.violate(unmeasuredPromotion, "%s entered Production after its analysis passed, but the model's rollout is %v",
			v.Name, st)
		return
	}
	for _, metric := range spec.Analysis.Metrics {
		rendered := strings.NewReplacer("{{.Model}}", m.Name, "{{.Version}}", "1").Replace(metric.Query)
		family := queryPattern.FindStringSubmatch(rendered)[1]
		passed := 0
		for _, a := range w.answered[answerKey{model: m.Name, version: v.Spec.Version, family: family}] {
			// A stale answer says nothing of the step (TestCanaryRegressions, "a sample older
			// than its step ..."): only a passing one counts.
			if a.kind == pass && !a.at.Before(st.StartTime.Time) {
				passed++
			}
		}
		if passed < len(spec.Steps) {
			w.violate(unmeasuredPromotion, "%s (v%d) entered Production after its canary of %d step(s) passed, but Prometheus "+
				"answered %s with a passing value for it only %d time(s) since the rollout began at %s",
				v.Name, v.Spec.Version, len(spec.Steps), family, passed, st.StartTime.UTC().Format(time.RFC3339))
		}
	}
}

// checkServing checks a converged model's serving: once its rollout is over, no canary
// Deployment is left, so that the Service sends nothing to a canary; and the stable Deployment
// runs the Production version on every replica.
func (w *world) checkServing(m *mlv1.RegisteredModel) {
	if m.Spec.Serving == nil {
		return
	}
	st := m.Status.Rollout
	if c := w.srv.deployment(serving.CanaryName(m.Name)); c != nil && !st.Active() {
		phase := "none"
		if st != nil {
			phase = string(st.Phase)
		}
		w.violate(canaryLeft, "model %s converged with its rollout %s, and its canary Deployment %s is still there",
			m.Name, phase, c.Name)
	}
	route := w.srv.route(m.Name)
	switch {
	case route == nil:
	case canaryOf(m).GatewayAPI() == nil:
		w.violate(canaryLeft, "model %s converged without traffic.gatewayAPI, and its HTTPRoute %s is still there",
			m.Name, route.Name)
	case !st.Active():
		if weight, mirror := canaryShare(route); weight > 0 || mirror > 0 {
			w.violate(canaryLeft, "model %s converged with its rollout over, and its route still sends %d%% and mirrors "+
				"%d%% to the canary", m.Name, weight, mirror)
		}
	}
	p := m.Status.ProductionVersion
	if p == nil || st.Active() {
		return
	}
	d := w.srv.deployment(serving.DeploymentName(m.Name))
	switch {
	case d == nil:
		w.violate(notServed, "model %s converged with Production version %d and no prediction Deployment", m.Name, *p)
	case d.Spec.Template.Annotations[serving.AnnotationVersion] != strconv.FormatInt(*p, 10):
		w.violate(notServed, "model %s converged with Production version %d, and its Deployment runs version %s",
			m.Name, *p, d.Spec.Template.Annotations[serving.AnnotationVersion])
	case m.Spec.Serving.Replicas != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas != *m.Spec.Serving.Replicas):
		w.violate(notServed, "model %s converged with %d replicas in spec.serving, and its Deployment asks for %v",
			m.Name, *m.Spec.Serving.Replicas, d.Spec.Replicas)
	}
}

// checkStaging checks a converged model's staging Deployment: with spec.serving.staging, it runs
// the newest Staging version of the decision d; without it, or with no Staging version, there is
// none.
func (w *world) checkStaging(m *mlv1.RegisteredModel, vs []*mlv1.ModelVersion, d promotion.Decision) {
	if m.Spec.Serving == nil {
		return
	}
	var want *mlv1.ModelVersion
	for _, v := range vs { // by number: the last Staging one is the newest
		if vd := d.Versions[v.Name]; m.Spec.Serving.Staging && vd.Stage == mlv1.StageStaging && !vd.Duplicate {
			want = v
		}
	}
	got := w.srv.deployment(serving.StagingName(m.Name))
	runs := ""
	if got != nil {
		runs = got.Spec.Template.Annotations[serving.AnnotationVersion]
	}
	switch {
	case want == nil && got != nil:
		w.violate(stagingWrong, "model %s converged with no version to stage (spec.serving.staging %v), and its staging "+
			"Deployment %s runs version %s", m.Name, m.Spec.Serving.Staging, got.Name, runs)
	case want != nil && got == nil:
		w.violate(stagingWrong, "model %s converged with Staging version %s and no staging Deployment", m.Name, want.Name)
	case want != nil && runs != strconv.FormatInt(want.Spec.Version, 10):
		w.violate(stagingWrong, "model %s converged with newest Staging version %d, and its staging Deployment runs "+
			"version %s", m.Name, want.Spec.Version, runs)
	}
}

// deploymentSummary is the trace's line for a Deployment.
func deploymentSummary(d *appsv1.Deployment) string {
	replicas := "-"
	if d.Spec.Replicas != nil {
		replicas = strconv.Itoa(int(*d.Spec.Replicas))
	}
	failed := ""
	for _, c := range d.Status.Conditions {
		if c.Reason == "ProgressDeadlineExceeded" {
			failed = " ProgressDeadlineExceeded"
		}
	}
	return fmt.Sprintf("deployment %s rv=%s gen=%d version=%s replicas=%s | "+
		"observed=%d replicas=%d updated=%d available=%d%s",
		d.Name, d.ResourceVersion, d.Generation, d.Spec.Template.Annotations[serving.AnnotationVersion], replicas,
		d.Status.ObservedGeneration, d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, failed)
}

// countRollout counts a canary that a write of a model's status begins or ends.
func (w *world) countRollout(prev client.Object, m *mlv1.RegisteredModel) {
	var before *mlv1.RolloutStatus
	if p, ok := prev.(*mlv1.RegisteredModel); ok {
		before = p.Status.Rollout
	}
	st := m.Status.Rollout
	if st == nil || before != nil && before.VersionUID == st.VersionUID && before.Phase == st.Phase {
		return
	}
	switch {
	case st.Canary() && !before.Canary():
		w.canaries["begun"]++
	case before.Canary() && !st.Canary():
		w.canaries[st.Phase]++
	}
}
