// Package analysis measures a model version's online gates: it renders a gate's PromQL template
// for the version, asks Prometheus for the value and checks it against the gate's bounds.
//
// Measure answers with a number only when Prometheus returns exactly one finite sample. Its
// errors are one line that says what happened and what to do, and fall into two kinds for the
// caller: ErrNoData (nothing to judge yet, such as a version without traffic: wait) and the rest
// (Prometheus cannot be asked, or the query is wrong: report it).
package analysis

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Vars are the values a query may name: {{.Namespace}}, {{.Model}}, {{.Version}}, {{.Track}}.
type Vars struct {
	Namespace, Model string
	Version          int64
	Track            string
}

// placeholders names what Render substitutes, for its errors.
const placeholders = "{{.Namespace}}, {{.Model}}, {{.Version}} and {{.Track}}"

// Render substitutes the four documented placeholders of a query, {{.Namespace}}, {{.Model}},
// {{.Version}} and {{.Track}} (spaces inside the braces allowed), and nothing else: a query is
// text written by a model's author and run by the operator, so it is never a program. The result
// is at most the query's length plus the values' (Kubernetes names, a number and a track, which
// need no quoting inside a PromQL label matcher), and rendering takes time linear in the query.
// An error names the first placeholder it cannot fill, never the whole query.
func Render(query string, v Vars) (string, error) {
	var out strings.Builder
	rest := query
	for {
		open := strings.Index(rest, "{{")
		if open < 0 {
			out.WriteString(rest)
			return out.String(), nil
		}
		out.WriteString(rest[:open])
		at := len(query) - len(rest) + open
		end := strings.Index(rest[open:], "}}")
		if end < 0 {
			return "", fmt.Errorf("the query has a {{ without its }} at character %d; it may name only %s", at+1, placeholders)
		}
		inner := rest[open+2 : open+end]
		value, ok := v.lookup(strings.TrimSpace(inner))
		if !ok {
			return "", fmt.Errorf("the query names %s at character %d, which Podium does not fill in; it may name only %s",
				quoteShort("{{"+inner+"}}"), at+1, placeholders)
		}
		out.WriteString(value)
		rest = rest[open+end+2:]
	}
}

func (v Vars) lookup(name string) (string, bool) {
	switch name {
	case ".Namespace":
		return v.Namespace, true
	case ".Model":
		return v.Model, true
	case ".Version":
		return strconv.FormatInt(v.Version, 10), true
	case ".Track":
		return v.Track, true
	}
	return "", false
}

// quoteShort quotes s for a message, cut to 40 characters.
func quoteShort(s string) string {
	if r := []rune(s); len(r) > 40 {
		s = string(r[:37]) + "..."
	}
	return strconv.Quote(s)
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
