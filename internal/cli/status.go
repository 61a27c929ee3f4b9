package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/printers"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
)

// statusHistory is how many transitions status shows.
const statusHistory = 5

func newStatusCommand(r *root) *cobra.Command {
	return &cobra.Command{
		Use:   "status MODEL",
		Short: "Summarise a model: Production version, policy, conditions and recent transitions",
		Long: `Summarise a model on one screen: its Production and latest versions, its promotion mode and
gates, its conditions, what it serves (when it is served), and its last five stage transitions.`,
		Example:           `  kubectl podium status battle-winner-predictor`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: r.completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := r.modelStatus(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeStatus(r.streams.Out, s, r.now())
		},
	}
}

// modelStatus is what status shows.
type modelStatus struct {
	model *mlv1.RegisteredModel
	// production is the Production ModelVersion, nil when there is none.
	production *mlv1.ModelVersion
	serving    serving
}

func (r *root) modelStatus(ctx context.Context, name string) (*modelStatus, error) {
	c, err := r.cluster()
	if err != nil {
		return nil, err
	}
	model, err := c.model(ctx, name)
	if err != nil {
		return nil, err
	}
	s := &modelStatus{model: model}
	if p := model.Status.ProductionVersion; p != nil {
		// A version the model still names may have been deleted since: show the number alone.
		s.production, _ = c.versionNumber(ctx, name, *p)
	}
	s.serving, err = c.serving(ctx, name)
	return s, err
}

func writeStatus(w io.Writer, s *modelStatus, now time.Time) error {
	m := s.model
	t := printers.GetNewTabWriter(w)
	field := func(name, value string) {
		if name != "" {
			name += ":"
		}
		_, _ = fmt.Fprintf(t, "%s\t%s\n", name, value)
	}
	field("Name", m.Name)
	field("Namespace", m.Namespace)
	field("Description", orDash(m.Spec.Description))
	field("Production", productionText(m, s.production))
	field("Latest", latestText(m))
	field("Mode", orDash(m.Spec.Promotion.Mode))
	field("Gates", gatesText(m.Spec.Promotion.Gates))
	if rule := m.Spec.Promotion.RequireImprovement; rule != nil {
		field("Improvement", improvementText(rule))
	}
	if len(m.Status.Conditions) == 0 {
		field("Conditions", "none yet: the operator has not reconciled the model")
	}
	for i, c := range m.Status.Conditions {
		name := ""
		if i == 0 {
			name = "Conditions"
		}
		field(name, fmt.Sprintf("%s=%s (%s, %s ago): %s", c.Type, c.Status, c.Reason, age(c.LastTransitionTime, now), c.Message))
	}
	if s.serving.Requested {
		field("Serving", servingText(s.serving))
	}
	if ro := m.Status.Rollout; ro != nil {
		field("Rollout", rolloutText(ro, m.Spec.Serving != nil && m.Spec.Serving.Rollout.GatewayAPI() != nil, now))
		for _, ms := range ro.Metrics {
			field("", "  "+metricText(ms))
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}

	history := m.Status.History
	if len(history) == 0 {
		_, err := fmt.Fprintln(w, "\nNo stage transitions yet.")
		return err
	}
	history = history[max(0, len(history)-statusHistory):]
	_, _ = fmt.Fprintf(w, "\nLast %d of %d transitions, newest last:\n", len(history), len(m.Status.History))
	return writeHistory(w, m, history, nil)
}

func productionText(m *mlv1.RegisteredModel, production *mlv1.ModelVersion) string {
	switch {
	case m.Status.ProductionVersion == nil:
		return "none"
	case production == nil:
		return fmt.Sprintf("version %d", *m.Status.ProductionVersion)
	case production.Status.PrimaryMetric != "":
		return fmt.Sprintf("version %d (%s, %s)", production.Spec.Version, production.Name, production.Status.PrimaryMetric)
	}
	return fmt.Sprintf("version %d (%s)", production.Spec.Version, production.Name)
}

func latestText(m *mlv1.RegisteredModel) string {
	if m.Status.LatestVersion == nil {
		return "none registered"
	}
	return fmt.Sprintf("version %d, %d versions registered", *m.Status.LatestVersion, m.Status.VersionCount)
}

func gatesText(gates []mlv1.Gate) string {
	if len(gates) == 0 {
		return "none: every version passes"
	}
	parts := make([]string, len(gates))
	for i, g := range gates {
		parts[i] = g.Metric + " " + promotion.Bound(g)
	}
	return strings.Join(parts, ", ")
}

func improvementText(rule *mlv1.Improvement) string {
	minDelta, direction := mlv1.Number("0"), mlv1.HigherIsBetter
	if rule.MinDelta != nil {
		minDelta = *rule.MinDelta
	}
	if rule.Direction != "" {
		direction = rule.Direction
	}
	return fmt.Sprintf("%s must beat Production's by at least %s (%s)", rule.Metric, minDelta, direction)
}

func servingText(s serving) string {
	if s.Version == nil {
		return "requested; no version serves yet"
	}
	return fmt.Sprintf("version %d, %d ready replicas (Deployment %s, Service %s)",
		*s.Version, s.ReadyReplicas, orDash(s.DeploymentName), orDash(s.ServiceName))
}

// rolloutText is the model's current or last rollout on one line.
func rolloutText(ro *mlv1.RolloutStatus, gatewayAPI bool, now time.Time) string {
	text := fmt.Sprintf("%s, version %d", ro.Phase, ro.Version)
	switch {
	case ro.Shadowing():
		text += " on copies of the requests"
	case ro.Canary() && gatewayAPI:
		text += fmt.Sprintf(" with %d%% of the requests", ro.Weight)
	case ro.Canary():
		text += fmt.Sprintf(" on %d%% of the pods", ro.Weight)
	}
	if ro.StartTime != nil {
		text += fmt.Sprintf(", started %s ago", age(*ro.StartTime, now))
	}
	if ro.Message != "" {
		text += ": " + ro.Message
	}
	return text
}

// metricText is one online gate's last measurement and its counts.
func metricText(ms mlv1.MetricStatus) string {
	value := "no value yet"
	if ms.Value != nil {
		value = ms.Value.String()
	}
	return fmt.Sprintf("%s %s (%s): %d passed, %d failed, %d inconclusive in a row", ms.Name, value, ms.Bound,
		ms.Passed, ms.Failed, ms.Inconclusive)
}
