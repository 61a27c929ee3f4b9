package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultTimeout bounds a query that nothing else bounds, neither the context's deadline nor the
// client's Timeout: a gate is measured inside a reconcile, and a Prometheus that accepts
// connections but never answers must not hold a worker.
const DefaultTimeout = 5 * time.Second

// maxAnswer bounds what Measure reads of an answer: one sample is a few hundred bytes, and an
// answer larger than this holds many series, which Measure rejects anyway. The API client reads
// whole bodies, so the bound is kept by the transport.
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

// Measure runs an instant query (POST /api/v1/query, through the Prometheus API client) at the
// server's current time and returns its one value: the query must yield exactly one finite
// sample, a vector of one series or a scalar. Otherwise the error says why and what to do; it
// matches ErrNoData when the query found nothing to judge (no series, NaN or ±Inf), and wraps the
// context's error when ctx ended the query.
//
// The API's warnings (such as "metric might not be a counter") are ignored: they do not change
// the value, and a gate's condition has room for one judgement only.
func (p Prometheus) Measure(ctx context.Context, query string) (float64, error) {
	value, _, err := p.Sample(ctx, query)
	return value, err
}

// Sample is Measure, with the time of the sample Prometheus answered with: its evaluation time
// for an instant query, on Prometheus' clock.
func (p Prometheus) Sample(ctx context.Context, query string) (float64, time.Time, error) {
	client := http.Client{}
	if p.Client != nil {
		client = *p.Client
	}
	if _, ok := ctx.Deadline(); !ok && client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	base, err := url.Parse(p.Address)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		// url.Parse's error quotes the address, with any password in it.
		return 0, time.Time{}, fmt.Errorf("the Prometheus address %q is not an http:// or https:// URL; set it to one, such as http://prometheus:9090",
			redact(p.Address))
	}
	at := redact(p.Address)
	// A copy of the client whose transport notes the status of the last answer, for the messages,
	// and that follows no redirect: the address is the one place a model's author says the
	// operator may send requests to, and a policy that pins it must pin where they go.
	rt := &recorder{base: client.Transport}
	client.Transport = rt
	client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		return fmt.Errorf("%w to %s", errRedirect, redact(req.URL.String()))
	}
	c, err := api.NewClient(api.Config{Address: p.Address, Client: &client})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("cannot ask Prometheus at %s: %s", at, oneLine(err.Error()))
	}
	v, _, err := v1.NewAPI(c).Query(ctx, query, time.Time{})
	if err != nil {
		return 0, time.Time{}, queryError(at, rt.status, err)
	}
	f, err := value(v)
	return f, sampleTime(v), err
}

// sampleTime is the time of a result's one sample; zero when it has none.
func sampleTime(v model.Value) time.Time {
	switch v := v.(type) {
	case *model.Scalar:
		return v.Timestamp.Time()
	case model.Vector:
		if len(v) == 1 {
			return v[0].Timestamp.Time()
		}
	}
	return time.Time{}
}

// recorder is an http.RoundTripper that notes the status of the last answer (the API client
// retries a refused POST as a GET) and cuts its body after maxAnswer bytes.
type recorder struct {
	base   http.RoundTripper
	status string
}

// errTooLarge ends the reading of an answer larger than maxAnswer.
var errTooLarge = errors.New("answer too large")

// errRedirect refuses a redirect from the Prometheus address.
var errRedirect = errors.New("redirected")

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	base := r.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	r.status = resp.Status
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxAnswer}
	return resp, nil
}

// limitedBody fails with errTooLarge once more than left bytes were read.
type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// queryError says why a query has no value: Prometheus refused it, the server is not Prometheus,
// or there was no answer. status is the last answer's HTTP status, "" when none came.
func queryError(at, status string, err error) error {
	code, _, _ := strings.Cut(status, " ")
	var uerr *url.Error
	switch aerr, isAPI := errors.AsType[*v1.Error](err); {
	case errors.Is(err, errRedirect):
		var to string
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			to = strings.TrimPrefix(uerr.Err.Error(), errRedirect.Error()+" to ")
		}
		return fmt.Errorf("the server at %s answered %s with a redirect to %s, and Podium follows no redirects; "+
			"set the address to where Prometheus answers", at, status, to)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("Prometheus at %s answered with more than %d bytes: the query yields many series; "+
			"aggregate it to one, with sum() or max()", at, maxAnswer)
	case isAPI:
		typ, msg := aerr.Type, aerr.Msg
		switch typ {
		case v1.ErrClient, v1.ErrServer, v1.ErrBadResponse:
			// The client reads Prometheus' error only from 400 and 422 answers; a query timeout
			// (503) or an internal error (500) arrives as the answer's body.
			var ok bool
			if typ, msg, ok = apiError(aerr.Detail); !ok {
				return fmt.Errorf("the server at %s answered %s, not with the Prometheus API; check that the address is Prometheus' base URL",
					at, status)
			}
		}
		return fmt.Errorf("Prometheus answered %s %s: %s; %s", code, typ, oneLine(msg), advice(typ))
	case status != "" && !errors.As(err, &uerr) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded) && !isTimeout(err):
		// An answer came, and the client could not read its data.
		return fmt.Errorf("cannot read the answer of Prometheus at %s: %s", at, oneLine(err.Error()))
	}
	return transportError(at, err)
}

// apiError reads Prometheus' error from the body of an answer, when it is the API's.
func apiError(body string) (v1.ErrorType, string, bool) {
	var a struct {
		Status    string       `json:"status"`
		ErrorType v1.ErrorType `json:"errorType"`
		Error     string       `json:"error"`
	}
	if json.Unmarshal([]byte(body), &a) != nil || a.Status != "error" || a.ErrorType == "" {
		return "", "", false
	}
	return a.ErrorType, a.Error, true
}

// value is the one finite number of a query's result.
func value(v model.Value) (float64, error) {
	switch v := v.(type) {
	case *model.Scalar:
		return finite(v.Value)
	case model.Vector:
		switch {
		case len(v) == 0:
			return 0, fmt.Errorf("%w: the query matched no series: the version has had no traffic yet, "+
				"or a metric or label in the query is misspelt", ErrNoData)
		case len(v) > 1:
			return 0, fmt.Errorf("the query yields %d series (%s); aggregate it to one, with sum() or max()",
				len(v), examples(v))
		case v[0].Histogram != nil:
			return 0, fmt.Errorf("the query yields a native histogram, not a number; " +
				"take a number from it, with histogram_quantile(), histogram_count() or histogram_sum()")
		}
		return finite(v[0].Value)
	case nil:
		return 0, fmt.Errorf("Prometheus answered success without data; check that the address is Prometheus' base URL")
	case model.Matrix:
		return 0, fmt.Errorf("the query yields a range vector, not one value; " +
			"make it an instant one, such as rate(m[5m]) or max_over_time(m[5m]) instead of m[5m]")
	}
	return 0, fmt.Errorf("the query yields a %s, not a number; make it a PromQL expression with one numeric value",
		v.Type())
}

// finite accepts only a finite value.
func finite(v model.SampleValue) (float64, error) {
	f := float64(v)
	switch {
	case math.IsNaN(f):
		return 0, fmt.Errorf("%w: the query's value is NaN, such as a ratio 0/0 over a window without traffic; "+
			"wait for traffic", ErrNoData)
	case math.IsInf(f, 0):
		return 0, fmt.Errorf("%w: the query's value is %s, such as a ratio x/0 over a window without traffic; "+
			"wait for traffic", ErrNoData, v)
	}
	return f, nil
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

// advice says what to do about an API error, by its errorType.
func advice(errorType v1.ErrorType) string {
	switch errorType {
	case v1.ErrBadData, v1.ErrExec:
		return "fix the query"
	case v1.ErrTimeout, v1.ErrCanceled:
		return "make the query cheaper, or raise Prometheus' --query.timeout"
	}
	return "check Prometheus' health"
}

// examples renders the labels of the first two series, for an error message.
func examples(vector model.Vector) string {
	n := min(len(vector), 2)
	out := make([]string, 0, n+1)
	for _, s := range vector[:n] {
		out = append(out, s.Metric.String())
	}
	if len(vector) > n {
		out = append(out, "…")
	}
	return strings.Join(out, ", ")
}
