package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

var pageFuncs = template.FuncMap{
	// modelURL is the path of a model's page, or of one under it.
	"modelURL": func(namespace, name string, rest ...string) string {
		return "/namespaces/" + url.PathEscape(namespace) + "/models/" + url.PathEscape(name) + strings.Join(rest, "")
	},
	"lower": strings.ToLower,
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"short": func(digest string) string {
		_, hex, found := strings.Cut(digest, ":")
		if !found || len(hex) < 12 {
			return orDash(digest)
		}
		return hex[:12]
	},
}

// modelSummary is a row of the models page.
type modelSummary struct {
	Namespace, Name, Description, Production, Latest, Rollout, Ready, ReadyReason, ReadyMessage string
	Attention                                                                                   string // why it needs a look, or ""
}

type modelsPage struct {
	AllNamespaces bool
	Models        []modelSummary
	AttentionOnly bool
	Hidden        int // models the filter hides
	Live          string
}

func (d *dashboard) modelsPage(ctx context.Context, req *http.Request) (string, any, error) {
	c := d.cluster
	if d.all {
		c = &cluster{client: d.cluster.client}
	}
	models, err := c.models(ctx)
	if err != nil {
		return "", nil, err
	}
	page := modelsPage{AllNamespaces: d.all, AttentionOnly: req.URL.Query().Get("attention") != "", Live: d.live.liveState()}
	now := d.r.now()
	for i := range models {
		m := &models[i]
		row := modelSummary{Namespace: m.Namespace, Name: m.Name, Description: m.Spec.Description, Production: versionText(m.Status.ProductionVersion),
			Latest: versionText(m.Status.LatestVersion), Rollout: "-", Attention: attention(m)}
		if ro := m.Status.Rollout; ro != nil {
			row.Rollout = rolloutText(ro, m.Spec.Serving != nil && m.Spec.Serving.Rollout.GatewayAPI() != nil, now)
		}
		if ready := meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionReady); ready != nil {
			row.Ready, row.ReadyReason, row.ReadyMessage = string(ready.Status), ready.Reason, ready.Message
		}
		if page.AttentionOnly && row.Attention == "" {
			page.Hidden++
			continue
		}
		page.Models = append(page.Models, row)
	}
	return "models.html", page, nil
}

// attention says why a model needs a person's look: it is stalled, its last rollout failed or was
// aborted, or its canary's analysis is inconclusive; "" when none of these.
func attention(m *mlv1.RegisteredModel) string {
	if stalled := meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionStalled); stalled != nil &&
		stalled.Status == metav1.ConditionTrue {
		return "Stalled: " + stalled.Reason
	}
	ro := m.Status.Rollout
	switch {
	case ro == nil:
	case ro.Phase == mlv1.RolloutAborted:
		return fmt.Sprintf("the rollout of version %d was aborted", ro.Version)
	case ro.Canary() && slices.ContainsFunc(ro.Metrics, func(ms mlv1.MetricStatus) bool { return ms.Inconclusive > 0 }):
		return fmt.Sprintf("the canary of version %d has inconclusive measurements", ro.Version)
	}
	if ready := meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionReady); ready != nil &&
		ready.Status == metav1.ConditionFalse && ready.Reason == string(mlv1.ReasonRolloutFailed) {
		return "Ready: " + ready.Reason
	}
	return ""
}

// gateCell is one version's value of one gated metric.
type gateCell struct {
	Value string
	Known bool // the operator has evaluated it against the gate
	Pass  bool
}

type versionRow struct {
	Number                                      int64
	Name, Stage, RegisteredBy, Digest, URI, Age string
	Description                                 string
	Production, Compared                        bool
	Gates                                       []gateCell
	Metrics                                     map[string]mlv1.Number
	GatesSummary                                string
}

type trendPoint struct {
	Version     int64
	Value       string
	X, Y        float64
	Pass, Known bool
	Production  bool
}

// trend is a gated metric over the version numbers, drawn as an SVG of trendWidth × trendHeight.
type trend struct {
	Metric, Bound string
	Points        []trendPoint
	Path          string  // the polyline's points
	BoundY        float64 // where the gate's bound is drawn; -1 when off the chart
	Min, Max      string  // the value axis
	Width, Height int
}

type compareRow struct {
	Label   string
	Values  []string
	Differs bool
}

type timelineRow struct {
	Time, Version, From, To, Reason, By, Message string
	Recreated                                    bool // the first row of a model created again under the name
}

type permission struct {
	Allowed bool
	Reason  string
}

type modelPage struct {
	Namespace, Name, Description, Mode, Production, Ready, ReadyReason, ReadyMessage, Live string
	Gates                                                                                  []string
	GateMetrics                                                                            []string
	Versions                                                                               []versionRow
	Compared                                                                               []int64
	Compare                                                                                []compareRow
	CompareHeads                                                                           []string
	Trends                                                                                 []trend
	Timeline                                                                               []timelineRow
	At, AtAnswer                                                                           string
	Rollout                                                                                *rolloutPanel
	Rollback                                                                               int64 // the version a rollback returns to; 0: none
	RequestVerb                                                                            string
	MayVersions, MayModel                                                                  permission
}

type rolloutStep struct {
	Index    int
	Weight   int32
	Duration string
	Current  bool
	Done     bool
}

type rolloutPanel struct {
	Version                int64
	Phase, Text, Message   string
	Weight                 int32
	Steps                  []rolloutStep
	TimeLeft               string
	Metrics                []rolloutMetric
	Canary, PausedByPerson bool
}

type rolloutMetric struct {
	Name, Value, Bound, Query, Message string
	Passed, Failed, Inconclusive       int32
}

func (d *dashboard) modelPage(ctx context.Context, req *http.Request, c *cluster, name string) (string, any, error) {
	model, err := c.model(ctx, name)
	if err != nil {
		return "", nil, err
	}
	versions, err := c.versions(ctx, name)
	if err != nil {
		return "", nil, err
	}
	now := d.r.now()
	page := &modelPage{Namespace: c.namespace, Name: model.Name, Description: model.Spec.Description, Mode: string(model.Spec.Promotion.Mode),
		Production: versionText(model.Status.ProductionVersion), Live: d.live.liveState(), RequestVerb: "Promote"}
	if page.Mode == "" {
		page.Mode = string(mlv1.PromotionAutomatic)
	}
	if page.Mode == string(mlv1.PromotionManual) {
		page.RequestVerb = "Approve"
	}
	if ready := meta.FindStatusCondition(model.Status.Conditions, mlv1.ConditionReady); ready != nil {
		page.Ready, page.ReadyReason, page.ReadyMessage = string(ready.Status), ready.Reason, ready.Message
	}
	for _, g := range model.Spec.Promotion.Gates {
		page.GateMetrics = append(page.GateMetrics, g.Metric)
		page.Gates = append(page.Gates, gateText(g))
	}
	compared := map[int64]bool{}
	for _, s := range req.URL.Query()["compare"] {
		if n, ok := parseVersionNumber(s); ok && !compared[n] {
			compared[n] = true
			page.Compared = append(page.Compared, n)
		}
	}
	for i := range versions {
		page.Versions = append(page.Versions, versionRowOf(&versions[i], model, compared[versions[i].Spec.Version], now))
	}
	page.Compare, page.CompareHeads = comparison(page.Versions)
	for i, g := range model.Spec.Promotion.Gates {
		page.Trends = append(page.Trends, trendOf(g, page.Gates[i], page.Versions, i))
	}
	if n, err := previousProduction(model); err == nil {
		page.Rollback = n
	}
	page.Rollout = rolloutPanelOf(model, now)
	// Without records (none yet, or a user who may not list them), the model's status alone.
	records, _ := c.records(ctx, name)
	rows := recordedRows(model, records)
	for i, h := range rows {
		page.Timeline = append(page.Timeline, timelineRow{Time: timestamp(h.Time), Version: versionCell(h.Version),
			From: orDash(string(h.From)), To: string(h.To), Reason: string(h.Reason), By: orDash(h.By), Message: h.Message,
			Recreated: i > 0 && h.modelUID != rows[i-1].modelUID})
	}
	if at := req.URL.Query().Get("at"); at != "" {
		page.At = at
		when, err := parseTime(at)
		switch {
		case err != nil:
			page.AtAnswer = err.Error()
		case len(rows) == 0:
			page.AtAnswer = "The model has no history yet."
		default:
			page.AtAnswer = recordedProductionAt(name, model, rows, when)
		}
	}
	page.MayVersions = c.may(ctx, resourceVersions)
	page.MayModel = c.may(ctx, resourceModels)
	return "model.html", page, nil
}

func gateText(g mlv1.Gate) string {
	var parts []string
	if g.Min != nil {
		parts = append(parts, g.Metric+" ≥ "+g.Min.String())
	}
	if g.Max != nil {
		parts = append(parts, g.Metric+" ≤ "+g.Max.String())
	}
	return strings.Join(parts, " and ")
}

func versionRowOf(v *mlv1.ModelVersion, model *mlv1.RegisteredModel, compared bool, now time.Time) versionRow {
	row := versionRow{Number: v.Spec.Version, Name: v.Name, Stage: orDash(string(v.Status.Stage)),
		RegisteredBy: orDash(v.Annotations[mlv1.AnnotationRegisteredBy]), Digest: v.Spec.Artifact.Digest,
		URI: v.Spec.Artifact.URI, Age: age(v.CreationTimestamp, now), Description: v.Spec.Description,
		Production: v.Status.Stage == mlv1.StageProduction, Compared: compared, Metrics: v.Spec.Metrics,
		GatesSummary: gatesSummary(v)}
	for _, g := range model.Spec.Promotion.Gates {
		cell := gateCell{Value: orDash(string(v.Spec.Metrics[g.Metric]))}
		for _, r := range v.Status.Gates {
			if r.Metric == g.Metric {
				cell.Known, cell.Pass = true, r.Passed
			}
		}
		row.Gates = append(row.Gates, cell)
	}
	return row
}

// comparison is the compared versions side by side: each metric any of them reports, the gates,
// the stage and the artifact; Differs marks a row whose values are not all the same.
func comparison(rows []versionRow) ([]compareRow, []string) {
	var picked []versionRow
	for _, r := range rows {
		if r.Compared {
			picked = append(picked, r)
		}
	}
	if len(picked) < 2 {
		return nil, nil
	}
	heads := make([]string, 0, len(picked))
	names := map[string]bool{}
	for _, r := range picked {
		heads = append(heads, "version "+strconv.FormatInt(r.Number, 10))
		for n := range r.Metrics {
			names[n] = true
		}
	}
	line := func(label string, value func(versionRow) string) compareRow {
		row := compareRow{Label: label}
		for _, r := range picked {
			row.Values = append(row.Values, value(r))
		}
		row.Differs = slices.ContainsFunc(row.Values, func(v string) bool { return v != row.Values[0] })
		return row
	}
	out := []compareRow{line("stage", func(r versionRow) string { return r.Stage })}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		out = append(out, line(n, func(r versionRow) string { return orDash(string(r.Metrics[n])) }))
	}
	return append(out,
		line("gates", func(r versionRow) string { return r.GatesSummary }),
		line("artifact", func(r versionRow) string { return r.URI }),
		line("digest", func(r versionRow) string { return orDash(r.Digest) }),
		line("registered by", func(r versionRow) string { return r.RegisteredBy }),
	), heads
}

// The trend chart, in SVG units: the margins leave room for the labels of the first and last points.
const trendWidth, trendHeight, trendPadX, trendPadY = 640, 200, 72, 28

// trendOf draws gate g's metric over the versions that report it, with the bound and the
// Production version marked.
func trendOf(g mlv1.Gate, bound string, rows []versionRow, gate int) trend {
	t := trend{Metric: g.Metric, Bound: bound, BoundY: -1, Width: trendWidth, Height: trendHeight}
	lo, hi := math.Inf(1), math.Inf(-1)
	var limit *float64
	if g.Min != nil {
		f := g.Min.Float64()
		limit = &f
	} else if g.Max != nil {
		f := g.Max.Float64()
		limit = &f
	}
	for _, r := range rows {
		if n, ok := r.Metrics[g.Metric]; ok {
			lo, hi = math.Min(lo, n.Float64()), math.Max(hi, n.Float64())
		}
	}
	if limit != nil {
		lo, hi = math.Min(lo, *limit), math.Max(hi, *limit)
	}
	if math.IsInf(lo, 0) {
		return t
	}
	if hi == lo {
		lo, hi = lo-0.5, hi+0.5
	}
	var first, last int64
	for _, r := range rows {
		if _, ok := r.Metrics[g.Metric]; ok {
			if first == 0 || r.Number < first {
				first = r.Number
			}
			last = max(last, r.Number)
		}
	}
	x := func(n int64) float64 {
		if last == first {
			return float64(trendWidth) / 2
		}
		return trendPadX + float64(n-first)*float64(trendWidth-2*trendPadX)/float64(last-first)
	}
	y := func(f float64) float64 { return trendPadY + (hi-f)*float64(trendHeight-2*trendPadY)/(hi-lo) }
	for _, r := range rows {
		n, ok := r.Metrics[g.Metric]
		if !ok {
			continue
		}
		cell := r.Gates[gate]
		p := trendPoint{Version: r.Number, Value: n.String(), X: x(r.Number), Y: y(n.Float64()), Pass: cell.Pass,
			Known: cell.Known, Production: r.Production}
		t.Points = append(t.Points, p)
	}
	slices.SortFunc(t.Points, func(a, b trendPoint) int { return cmp.Compare(a.Version, b.Version) })
	path := make([]string, 0, len(t.Points))
	for _, p := range t.Points {
		path = append(path, fmt.Sprintf("%.1f,%.1f", p.X, p.Y))
	}
	t.Path = strings.Join(path, " ")
	if limit != nil {
		t.BoundY = y(*limit)
	}
	t.Min, t.Max = strconv.FormatFloat(lo, 'g', 4, 64), strconv.FormatFloat(hi, 'g', 4, 64)
	return t
}

func rolloutPanelOf(m *mlv1.RegisteredModel, now time.Time) *rolloutPanel {
	ro := m.Status.Rollout
	if ro == nil {
		return nil
	}
	gatewayAPI := m.Spec.Serving != nil && m.Spec.Serving.Rollout.GatewayAPI() != nil
	p := &rolloutPanel{Version: ro.Version, Phase: string(ro.Phase), Text: rolloutText(ro, gatewayAPI, now),
		Message: ro.Message, Weight: ro.Weight, Canary: ro.Canary(), PausedByPerson: pausedByAnnotation(m)}
	var spec *mlv1.Rollout
	if m.Spec.Serving != nil {
		spec = m.Spec.Serving.Rollout
	}
	queries := map[string]string{}
	if spec != nil {
		for i, s := range spec.Steps {
			step := rolloutStep{Index: i + 1, Weight: s.Weight, Duration: s.Duration.Duration.String()}
			if ro.Step != nil {
				// A rollout that ended stands at no step: the steps it passed stay marked done.
				step.Current, step.Done = ro.Canary() && int(*ro.Step) == i, int(*ro.Step) > i
			}
			p.Steps = append(p.Steps, step)
			if step.Current && ro.StepStartTime != nil && ro.Phase == mlv1.RolloutProgressing {
				left := s.Duration.Duration - now.Sub(ro.StepStartTime.Time)
				p.TimeLeft = max(left, 0).Round(time.Second).String() + " left in step " + strconv.Itoa(i+1)
			}
		}
		if ro.Phase == mlv1.RolloutBaking && spec.Bake != nil && ro.StepStartTime != nil {
			left := spec.Bake.Duration - now.Sub(ro.StepStartTime.Time)
			p.TimeLeft = max(left, 0).Round(time.Second).String() + " left in the bake, watched by the online gates"
		}
		if spec.Analysis != nil {
			for _, am := range spec.Analysis.Metrics {
				queries[am.Name] = am.Query
			}
		}
	}
	for _, ms := range ro.Metrics {
		value := "no value yet"
		if ms.Value != nil {
			value = ms.Value.String()
		}
		p.Metrics = append(p.Metrics, rolloutMetric{Name: ms.Name, Value: value, Bound: ms.Bound, Query: queries[ms.Name],
			Message: ms.Message, Passed: ms.Passed, Failed: ms.Failed, Inconclusive: ms.Inconclusive})
	}
	return p
}

// may asks the API server whether the person may patch the resource in the namespace, which every
// action needs; the reason says who refused.
func (c *cluster) may(ctx context.Context, resource string) permission {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: c.namespace, Verb: "patch",
			Group: mlv1.GroupVersion.Group, Resource: resource}}}
	if err := c.client.Create(ctx, review); err != nil {
		return permission{Allowed: true, Reason: "could not ask the API server (" + err.Error() + "): it judges the action"}
	}
	if review.Status.Allowed {
		return permission{Allowed: true}
	}
	reason := fmt.Sprintf("The API server says you may not patch %s in namespace %s", resource, c.namespace)
	if review.Status.Reason != "" {
		reason += ": " + review.Status.Reason
	}
	return permission{Reason: reason}
}

// The resources the actions patch, as a SelfSubjectAccessReview names them.
const resourceVersions, resourceModels = "modelversions", "registeredmodels"

// dashboardAction is what a confirmation page offers and posts: a command's run, without its wait.
type dashboardAction struct {
	Label    string
	resource string // what it patches, for the permission check
	// describe says what will happen, for the confirmation page.
	describe func(model *mlv1.RegisteredModel, version string) string
	run      func(ctx context.Context, o *rolloutOptions, model, version string) error
}

var dashboardActions = map[string]dashboardAction{
	"promote": {Label: "Promote", resource: resourceVersions, describe: describeRequest, run: func(ctx context.Context,
		o *rolloutOptions, model, version string) error {
		return o.run(ctx, model, func(*mlv1.RegisteredModel) (string, error) { return version, nil })
	}},
	"approve": {Label: "Approve", resource: resourceVersions, describe: describeRequest, run: func(ctx context.Context,
		o *rolloutOptions, model, version string) error {
		o.approve = true
		return o.run(ctx, model, func(*mlv1.RegisteredModel) (string, error) { return version, nil })
	}},
	"rollback": {Label: "Roll back", resource: resourceVersions, describe: func(m *mlv1.RegisteredModel, version string) string {
		return fmt.Sprintf("Roll %s back to version %s: write spec.stage: Production on it, as kubectl podium rollback "+
			"%s --to %s does. The operator makes it Production again, and %s becomes Archived and is never promoted "+
			"automatically again.", m.Name, version, m.Name, version, productionVersion(m))
	}, run: func(ctx context.Context, o *rolloutOptions, model, version string) error {
		o.to = version
		return o.run(ctx, model, o.rollbackTarget)
	}},
	"pause": {Label: "Pause", resource: resourceModels, describe: func(m *mlv1.RegisteredModel, _ string) string {
		return fmt.Sprintf("Hold the canary of %s where it stands, as kubectl podium pause %s does: annotate the model %s=true. "+
			"Its step does not advance until it is resumed; a failing measurement still aborts it.",
			m.Name, m.Name, mlv1.AnnotationPauseRollout)
	}, run: func(ctx context.Context, o *rolloutOptions, model, _ string) error { return o.pause(ctx, model) }},
	"resume": {Label: "Resume", resource: resourceModels, describe: func(m *mlv1.RegisteredModel, _ string) string {
		return fmt.Sprintf("Resume the canary of %s, as kubectl podium resume %s does: remove the annotation %s. "+
			"The current step starts again from its beginning.", m.Name, m.Name, mlv1.AnnotationPauseRollout)
	}, run: func(ctx context.Context, o *rolloutOptions, model, _ string) error { return o.resume(ctx, model) }},
	"abort": {Label: "Abort", resource: resourceVersions, describe: func(m *mlv1.RegisteredModel, _ string) string {
		return fmt.Sprintf("End the canary of %s, as kubectl podium abort %s does: write spec.stage: Archived on its "+
			"candidate. Its pods go, and %s takes all the traffic again.", m.Name, m.Name, productionVersion(m))
	}, run: func(ctx context.Context, o *rolloutOptions, model, _ string) error { return o.abort(ctx, model) }},
}

func describeRequest(m *mlv1.RegisteredModel, version string) string {
	text := fmt.Sprintf("Ask for version %s of %s as Production: write spec.stage: Production on it, as kubectl podium "+
		"promote %s %s does. A person's request overrides the gates; %s becomes Archived.",
		version, m.Name, m.Name, version, productionVersion(m))
	if m.Spec.Serving != nil && m.Spec.Serving.Rollout != nil && m.Spec.Serving.Rollout.Strategy == mlv1.RolloutCanary {
		text += " The model rolls out by canary: the version first runs as the candidate, through every step."
	}
	return text
}

// runAs runs the action as the command would with --no-wait, and returns what the
// command printed.
func (a dashboardAction) runAs(ctx context.Context, r *root, namespace, model, version string) (string, error) {
	var out bytes.Buffer
	quiet := &root{flags: r.flags, streams: genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out},
		now: r.now, pollInterval: r.pollInterval, namespaceOverride: namespace}
	o := &rolloutOptions{&promoteOptions{root: quiet, noWait: true}}
	err := a.run(ctx, o, model, version)
	return strings.TrimSpace(out.String()), err
}

type confirmPage struct {
	Namespace, Model, Action, Label, Version, Description string
	Permission                                            permission
}

func (d *dashboard) confirmPage(ctx context.Context, req *http.Request, c *cluster, name string) (string, any, error) {
	q := req.URL.Query()
	action, ok := dashboardActions[q.Get("action")]
	if !ok {
		return "", nil, fmt.Errorf("no such action: %q", q.Get("action"))
	}
	model, err := c.model(ctx, name)
	if err != nil {
		return "", nil, err
	}
	version := q.Get("version")
	if version != "" {
		if _, ok := parseVersionNumber(version); !ok {
			return "", nil, fmt.Errorf("%q is not a version number", version)
		}
	}
	return "confirm.html", confirmPage{Namespace: c.namespace, Model: name, Action: q.Get("action"), Label: action.Label, Version: version,
		Description: action.describe(model, version), Permission: c.may(ctx, action.resource)}, nil
}

type resultPage struct {
	Namespace, Model, Action, Output, Err string
}
