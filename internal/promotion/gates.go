package promotion

import (
	"fmt"
	"math/big"
	"strings"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// GateOutcome is the verdict of every gate on one version: the first failure names the reason, so
// a person reads "test_accuracy 0.8203 < 0.85" straight from `kubectl describe`.
type GateOutcome struct {
	Results []mlv1.GateResult
	Passed  bool
	// Reason is AllGatesPassed, NoGates, GateFailed or MetricMissing.
	Reason string
	// Message explains the first failure, or lists what passed.
	Message string
}

// EvaluateGates checks metrics against every gate, in the gates' order.
func EvaluateGates(gates []mlv1.Gate, metrics map[string]mlv1.Number) GateOutcome {
	if len(gates) == 0 {
		return GateOutcome{Passed: true, Reason: mlv1.ReasonNoGates, Message: "The model has no gates"}
	}
	out := GateOutcome{Passed: true, Reason: mlv1.ReasonAllGatesPassed}
	var passed, failures []string
	for _, g := range gates {
		res := mlv1.GateResult{Metric: g.Metric, Bound: Bound(g)}
		value, ok := metrics[g.Metric]
		switch {
		case !ok:
			failures = append(failures, fmt.Sprintf("%s is missing; the gate %s %s needs it", g.Metric, g.Metric, res.Bound))
			if out.Passed {
				out.Reason = mlv1.ReasonMetricMissing
			}
		default:
			v := value
			res.Value = &v
			if msg := check(g, value); msg != "" {
				failures = append(failures, msg)
				if out.Passed {
					out.Reason = mlv1.ReasonGateFailed
				}
			} else {
				res.Passed = true
				passed = append(passed, fmt.Sprintf("%s %s %s", g.Metric, value, res.Bound))
			}
		}
		if !res.Passed {
			out.Passed = false
		}
		out.Results = append(out.Results, res)
	}
	if out.Passed {
		out.Message = strings.Join(passed, ", ")
	} else {
		out.Message = strings.Join(failures, "; ")
	}
	return out
}

// check returns why value misses the gate, or "" when it passes.
func check(g mlv1.Gate, value mlv1.Number) string {
	v, ok := value.Rat()
	if !ok {
		return fmt.Sprintf("%s %q is not a number", g.Metric, string(value))
	}
	if g.Min != nil {
		if lo, ok := g.Min.Rat(); ok && v.Cmp(lo) < 0 {
			return fmt.Sprintf("%s %s < %s", g.Metric, value, *g.Min)
		}
	}
	if g.Max != nil {
		if hi, ok := g.Max.Rat(); ok && v.Cmp(hi) > 0 {
			return fmt.Sprintf("%s %s > %s", g.Metric, value, *g.Max)
		}
	}
	return ""
}

// Bound renders a gate's bound in words: ">= 0.85", "<= 0.05" or "in [0.8, 0.9]".
func Bound(g mlv1.Gate) string {
	switch {
	case g.Min != nil && g.Max != nil:
		return fmt.Sprintf("in [%s, %s]", *g.Min, *g.Max)
	case g.Min != nil:
		return ">= " + g.Min.String()
	case g.Max != nil:
		return "<= " + g.Max.String()
	}
	return "(no bound)"
}

// PrimaryMetric renders the model's first gate metric for one version, such as "test_accuracy=0.8723".
func PrimaryMetric(gates []mlv1.Gate, metrics map[string]mlv1.Number) string {
	if len(gates) == 0 {
		return ""
	}
	name := gates[0].Metric
	if v, ok := metrics[name]; ok {
		return name + "=" + v.String()
	}
	return name + "=<missing>"
}

// improves says whether the candidate beats the champion under rule, and why not when it does not.
func improves(rule *mlv1.Improvement, candidate, champion map[string]mlv1.Number) (bool, string) {
	c, ok := candidate[rule.Metric]
	if !ok {
		return false, fmt.Sprintf("%s is missing; requireImprovement needs it", rule.Metric)
	}
	p, ok := champion[rule.Metric]
	if !ok {
		return true, ""
	}
	cv, ok1 := c.Rat()
	pv, ok2 := p.Rat()
	if !ok1 || !ok2 {
		return false, fmt.Sprintf("%s is not a number", rule.Metric)
	}
	delta := new(big.Rat)
	if rule.Direction == mlv1.LowerIsBetter {
		delta.Sub(pv, cv)
	} else {
		delta.Sub(cv, pv)
	}
	minDelta := new(big.Rat)
	if rule.MinDelta != nil {
		if d, ok := rule.MinDelta.Rat(); ok {
			minDelta = d
		}
	}
	if delta.Cmp(minDelta) < 0 {
		return false, fmt.Sprintf("%s %s does not improve on Production's %s by at least %s", rule.Metric, c, p, minDeltaText(rule))
	}
	return true, ""
}

func minDeltaText(rule *mlv1.Improvement) string {
	if rule.MinDelta == nil {
		return "0"
	}
	return rule.MinDelta.String()
}
