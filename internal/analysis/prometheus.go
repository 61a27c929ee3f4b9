package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a query that nothing else bounds, neither the context's deadline nor the
// client's Timeout: a gate is measured inside a reconcile, and a Prometheus that accepts
// connections but never answers must not hold a worker.
const DefaultTimeout = 5 * time.Second

// maxAnswer bounds what Measure reads of an answer: one sample is a few hundred bytes, and an
// answer larger than this holds many series, which Measure rejects anyway.
const maxAnswer = 1 << 20

// Prometheus queries one Prometheus server's HTTP API.
type Prometheus struct {
	// Address is the server's base URL, such as http://prometheus.monitoring:9090, with a path
	// prefix when Prometheus serves under one. User information in it is sent as basic
	// authentication and left out of every error.
	Address string
	// Client makes the requests; nil is http.DefaultClient. Whichever it is, a query ends after
	// DefaultTimeout unless the client's Timeout or the context's deadline say otherwise.
	Client *http.Client
}

// Measure runs an instant query (POST /api/v1/query) and returns its one value: the query must
// yield exactly one finite sample, a vector of one series or a scalar. Otherwise the error says
// why and what to do; it matches ErrNoData when the query found nothing to judge (no series, NaN
// or ±Inf), and wraps the context's error when ctx ended the query.
func (p Prometheus) Measure(ctx context.Context, query string) (float64, error) {
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	if _, ok := ctx.Deadline(); !ok && client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	base, err := url.Parse(p.Address)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		// url.Parse's error quotes the address, with any password in it.
		return 0, fmt.Errorf("the Prometheus address %q is not an http:// or https:// URL; set it to one, such as http://prometheus:9090",
			redact(p.Address))
	}
	at := redact(p.Address)
	form := url.Values{"query": {query}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath("api", "v1", "query").String(),
		strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("cannot ask Prometheus at %s: %s", at, oneLine(err.Error()))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, transportError(at, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return 0, transportError(at, err)
	}
	if len(body) > maxAnswer {
		return 0, fmt.Errorf("Prometheus at %s answered with more than %d bytes: the query yields many series; "+
			"aggregate it to one, with sum() or max()", at, maxAnswer)
	}
	v, err := decode(resp.StatusCode, body)
	if errors.Is(err, errNotAPI) {
		return 0, fmt.Errorf("the server at %s answered %s, not with the Prometheus API; check that the address is Prometheus' base URL",
			at, resp.Status)
	}
	return v, err
}

// transportError says why Prometheus gave no answer; err (from the http.Client) is wrapped
// without its URL, which may carry user information.
func transportError(at string, err error) error {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		err = uerr.Err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("the query to Prometheus at %s was canceled: %w", at, err)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("no answer from Prometheus at %s in time (%w); check that it is up and not overloaded", at, err)
	}
	return fmt.Errorf("cannot reach Prometheus at %s (%w); check the address and that Prometheus is running", at, err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// redact leaves the user information, a query and a fragment (where tokens travel) out of an
// address, for an error message.
func redact(address string) string {
	u, err := url.Parse(address)
	if err != nil {
		// Cut what a parser could take for user information, a query or a fragment.
		if i := strings.IndexAny(address, "?#"); i >= 0 {
			address = address[:i]
		}
		if i := strings.LastIndex(address, "@"); i >= 0 {
			address = address[i+1:]
		}
		return address
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// errNotAPI marks an answer that is not the Prometheus API's JSON.
var errNotAPI = errors.New("not a Prometheus API answer")

// apiAnswer is the envelope of every answer of Prometheus' HTTP API.
type apiAnswer struct {
	Status    string     `json:"status"`
	Data      *queryData `json:"data"`
	ErrorType string     `json:"errorType"`
	Error     string     `json:"error"`
}

// queryData is an instant query's result; Result's shape depends on ResultType.
type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// series is one element of a vector: its labels and its sample, a float or a native histogram.
type series struct {
	Metric    map[string]string `json:"metric"`
	Value     []json.RawMessage `json:"value"`
	Histogram json.RawMessage   `json:"histogram"`
}

// decode reads an answer to an instant query into its one value.
func decode(status int, body []byte) (float64, error) {
	var a apiAnswer
	if err := json.Unmarshal(body, &a); err != nil || (a.Status != "success" && a.Status != "error") {
		return 0, errNotAPI
	}
	if a.Status == "error" {
		return 0, fmt.Errorf("Prometheus answered %d %s: %s; %s", status, a.ErrorType, oneLine(a.Error), advice(a.ErrorType))
	}
	if a.Data == nil {
		return 0, fmt.Errorf("Prometheus answered success without data; check that the address is Prometheus' base URL")
	}
	switch a.Data.ResultType {
	case "scalar":
		var sample []json.RawMessage
		if err := json.Unmarshal(a.Data.Result, &sample); err != nil {
			return 0, fmt.Errorf("cannot read Prometheus' scalar %s", oneLine(string(a.Data.Result)))
		}
		return sampleValue(sample)
	case "vector":
		var vector []series
		if err := json.Unmarshal(a.Data.Result, &vector); err != nil {
			return 0, fmt.Errorf("cannot read Prometheus' vector: %s", oneLine(err.Error()))
		}
		switch {
		case len(vector) == 0:
			return 0, fmt.Errorf("%w: the query matched no series: the version has had no traffic yet, "+
				"or a metric or label in the query is misspelt", ErrNoData)
		case len(vector) > 1:
			return 0, fmt.Errorf("the query yields %d series (%s); aggregate it to one, with sum() or max()",
				len(vector), examples(vector))
		case vector[0].Value == nil && vector[0].Histogram != nil:
			return 0, fmt.Errorf("the query yields a native histogram, not a number; " +
				"take a number from it, with histogram_quantile(), histogram_count() or histogram_sum()")
		}
		return sampleValue(vector[0].Value)
	case "matrix":
		return 0, fmt.Errorf("the query yields a range vector, not one value; " +
			"make it an instant one, such as rate(m[5m]) or max_over_time(m[5m]) instead of m[5m]")
	}
	return 0, fmt.Errorf("the query yields a %s, not a number; make it a PromQL expression with one numeric value",
		a.Data.ResultType)
}

// sampleValue reads a sample, [<unix time>, "<value>"], and accepts only a finite value.
func sampleValue(sample []json.RawMessage) (float64, error) {
	var text string
	if len(sample) != 2 || json.Unmarshal(sample[1], &text) != nil {
		raw, _ := json.Marshal(sample)
		return 0, fmt.Errorf("cannot read Prometheus' sample %s", oneLine(string(raw)))
	}
	v, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("cannot read Prometheus' sample value %q", text)
	case math.IsNaN(v):
		return 0, fmt.Errorf("%w: the query's value is NaN, such as a ratio 0/0 over a window without traffic; "+
			"wait for traffic", ErrNoData)
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("%w: the query's value is %s, such as a ratio x/0 over a window without traffic; "+
			"wait for traffic", ErrNoData, text)
	}
	return v, nil
}

// advice says what to do about an API error, by its errorType.
func advice(errorType string) string {
	switch errorType {
	case "bad_data", "execution":
		return "fix the query"
	case "timeout", "canceled":
		return "make the query cheaper, or raise Prometheus' --query.timeout"
	}
	return "check Prometheus' health"
}

// examples renders the labels of the first two series, for an error message.
func examples(vector []series) string {
	n := min(len(vector), 2)
	out := make([]string, 0, n)
	for _, s := range vector[:n] {
		labels := make([]string, 0, len(s.Metric))
		for _, name := range slices.Sorted(maps.Keys(s.Metric)) {
			labels = append(labels, fmt.Sprintf("%s=%q", name, s.Metric[name]))
		}
		out = append(out, "{"+strings.Join(labels, ", ")+"}")
	}
	if len(vector) > n {
		out = append(out, "…")
	}
	return strings.Join(out, ", ")
}
