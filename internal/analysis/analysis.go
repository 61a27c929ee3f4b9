// Package analysis measures a model version's online gates: it renders a gate's PromQL template
// for the version, asks Prometheus for the value and checks it against the gate's bounds.
//
// Measure answers with a number only when Prometheus returns exactly one finite sample. Its
// errors are one line that says what happened and what to do, and fall into two kinds for the
// caller: ErrNoData (nothing to judge yet, such as a version without traffic: wait) and the rest
// (Prometheus cannot be asked, or the query is wrong: report it).
package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
)

// Vars are the values a query may name: {{.Namespace}}, {{.Model}}, {{.Version}}, {{.Track}}.
type Vars struct {
	Namespace, Model string
	Version          int64
	Track            string
}

// Render expands a query template (text/template, missingkey=error); a template error names the
// query. The values are inserted as they are: Kubernetes names and a version number need no
// quoting inside a PromQL label matcher.
func Render(query string, v Vars) (string, error) {
	tmpl, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", fmt.Errorf("query %q is not a valid template: %s", query, oneLine(err.Error()))
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, v); err != nil {
		return "", fmt.Errorf("query %q cannot be rendered: %s; it may name only {{.Namespace}}, {{.Model}}, {{.Version}} and {{.Track}}",
			query, oneLine(err.Error()))
	}
	return out.String(), nil
}

// Check says whether value passes the bounds min and max (inclusive; nil is no bound) and renders
// the bound for a message: the one it misses ("> 0.01", "< 0.85"), or when it passes the bounds it
// meets (">= 0.85", "<= 0.01", "in [0.8, 0.9]", "(no bound)"). So "error-rate 0.034 > 0.01"
// is name, value and bound. NaN never passes.
func Check(value float64, minimum, maximum *float64) (ok bool, bound string) {
	switch {
	case math.IsNaN(value): // NaN compares false with everything, so it would pass every bound
		return false, "is not a number"
	case minimum != nil && value < *minimum:
		return false, "< " + formatFloat(*minimum)
	case maximum != nil && value > *maximum:
		return false, "> " + formatFloat(*maximum)
	case minimum != nil && maximum != nil:
		return true, fmt.Sprintf("in [%s, %s]", formatFloat(*minimum), formatFloat(*maximum))
	case minimum != nil:
		return true, ">= " + formatFloat(*minimum)
	case maximum != nil:
		return true, "<= " + formatFloat(*maximum)
	}
	return true, "(no bound)"
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// ErrNoData is the kind of the errors that mean there is nothing to judge yet: the query matched no
// series, or its value is NaN or ±Inf (a ratio over a window without traffic). Test with errors.Is.
var ErrNoData = errors.New("no data")

// oneLine keeps a message on one line and bounded, for a condition message.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const limit = 300
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}
