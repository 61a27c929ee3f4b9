package analysis_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podium-dev/podium/internal/analysis"
	"github.com/podium-dev/podium/internal/testprometheus"
)

// errorRate is an online gate's query: the share of a version's requests that failed, over the
// last 10 s.
const errorRate = `sum(rate(podium_requests_total{namespace="{{.Namespace}}",model="{{.Model}}",version="{{.Version}}",code=~"5.."}[10s]))` +
	` / sum(rate(podium_requests_total{namespace="{{.Namespace}}",model="{{.Model}}",version="{{.Version}}"}[10s]))`

// serving is the traffic of a model's versions, as the prediction servers would export it.
type serving struct {
	mu       sync.Mutex // held while serving a scrape, so a scrape sees whole ticks
	requests *prometheus.CounterVec
	handler  http.Handler
}

func newServing() *serving {
	reg := prometheus.NewRegistry()
	s := &serving{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podium_requests_total", Help: "Predictions served, by version and HTTP code.",
	}, []string{"namespace", "model", "version", "code"})}
	reg.MustRegister(s.requests)
	s.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return s
}

func (s *serving) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler.ServeHTTP(w, r)
}

// tick serves one round of requests: of version 2, 9 succeed and 1 fails; version 3 is
// deployed but gets no traffic.
func (s *serving) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests.WithLabelValues("ml", "churn", "2", "200").Add(9)
	s.requests.WithLabelValues("ml", "churn", "2", "500").Add(1)
	s.requests.WithLabelValues("ml", "churn", "3", "200").Add(0)
	s.requests.WithLabelValues("ml", "churn", "3", "500").Add(0)
}

// startTraffic serves ticks every 100 ms until the test ends, scraped by a real Prometheus.
func startTraffic(t *testing.T) analysis.Prometheus {
	s := newServing()
	s.tick()
	target := httptest.NewServer(s)
	t.Cleanup(target.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				s.tick()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	server := testprometheus.Start(t, []string{strings.TrimPrefix(target.URL, "http://")})
	return analysis.Prometheus{Address: server.Address}
}

func render(t *testing.T, query string, version int64) string {
	t.Helper()
	q, err := analysis.Render(query, analysis.Vars{Namespace: "ml", Model: "churn", Version: version, Track: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// eventually retries f until it passes, for up to 30 s: Prometheus has data a few scrapes after
// it starts.
func eventually(t *testing.T, f func(g gomega.Gomega)) {
	t.Helper()
	gomega.NewWithT(t).Eventually(f).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(gomega.Succeed())
}

func TestMeasureAgainstPrometheus(t *testing.T) {
	prom := startTraffic(t)

	for name, query := range map[string]string{
		"a ratio of rates is the version's error rate": render(t, errorRate, 2),
		"a ratio of counters is the version's error rate": `sum(podium_requests_total{version="2",code="500"})` +
			` / sum(podium_requests_total{version="2"})`,
	} {
		t.Run(name, func(t *testing.T) {
			eventually(t, func(g gomega.Gomega) {
				v, err := prom.Measure(t.Context(), query)
				g.Expect(err).NotTo(gomega.HaveOccurred())
				g.Expect(v).To(gomega.BeNumerically("~", 0.1, 1e-9))
			})
		})
	}

	t.Run("a scalar is its value", func(t *testing.T) {
		v, err := prom.Measure(t.Context(), "scalar(vector(0.5)) * 2")
		if err != nil || v != 1 {
			t.Errorf("Measure = %v, %v; want 1", v, err)
		}
	})

	t.Run("user information in the address is sent and works", func(t *testing.T) {
		withUser := prom
		withUser.Address = strings.Replace(prom.Address, "http://", "http://reader:hunter2@", 1)
		if v, err := withUser.Measure(t.Context(), "vector(1)"); err != nil || v != 1 {
			t.Errorf("Measure = %v, %v; want 1", v, err)
		}
	})

	for name, tc := range map[string]struct {
		query string
		// want are parts of the error's message.
		want   []string
		noData bool
	}{
		"a version deployed without traffic is no data: 0/0 is NaN": {
			query: render(t, errorRate, 3), want: []string{"no data", "NaN"}, noData: true,
		},
		"a version that never existed is no data: no series": {
			query: render(t, errorRate, 9), want: []string{"no data", "matched no series"}, noData: true,
		},
		"a division by zero is no data": {
			query: `sum(rate(podium_requests_total{version="2"}[10s])) / sum(rate(podium_requests_total{version="3"}[10s]))`,
			want:  []string{"no data", "+Inf"}, noData: true,
		},
		"a query Prometheus cannot parse shows Prometheus' error": {
			query: `sum(rate(podium_requests_total[10s]`,
			want:  []string{"400 bad_data", "parse error", "fix the query"},
		},
		"a query of two series asks for an aggregation": {
			query: `podium_requests_total{version="2"}`,
			want:  []string{"2 series", `code="200"`, `code="500"`, "sum() or max()"},
		},
		"a range vector asks for an instant one": {
			query: `podium_requests_total{version="2",code="200"}[10s]`,
			want:  []string{"range vector"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			// Wait for the scrapes that make the answer what it will stay.
			eventually(t, func(g gomega.Gomega) {
				_, err := prom.Measure(t.Context(), tc.query)
				g.Expect(err).To(gomega.HaveOccurred())
				for _, part := range tc.want {
					g.Expect(err.Error()).To(gomega.ContainSubstring(part))
				}
				g.Expect(errors.Is(err, analysis.ErrNoData)).To(gomega.Equal(tc.noData))
				g.Expect(err.Error()).NotTo(gomega.ContainSubstring("\n"))
			})
		})
	}
}

// closedAddress is a loopback address where nothing listens.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// hanging is a server that accepts requests and answers none until the test ends.
func hanging(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices when the client hangs up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) }) // first: Close waits for the handlers
	return strings.TrimPrefix(s.URL, "http://")
}

func TestMeasureFailsFast(t *testing.T) {
	for name, tc := range map[string]struct {
		prom    analysis.Prometheus
		timeout time.Duration // of the context; 0 is none
		within  time.Duration
		want    []string
		wantErr error
	}{
		"a closed port is unreachable": {
			prom:   analysis.Prometheus{Address: "http://reader:hunter2@" + closedAddress(t)},
			within: 2 * time.Second,
			want:   []string{"cannot reach Prometheus at http://127.0.0.1:", "connection refused", "check the address"},
		},
		"a Prometheus that hangs ends with the context's deadline": {
			prom:    analysis.Prometheus{Address: "http://reader:hunter2@" + hanging(t) + "/?token=hunter2"},
			timeout: 300 * time.Millisecond,
			within:  2 * time.Second,
			want:    []string{"no answer from Prometheus at http://127.0.0.1:", "in time", "context deadline exceeded"},
			wantErr: context.DeadlineExceeded,
		},
		"a Prometheus that hangs ends after the default timeout when nothing else bounds the query": {
			prom:    analysis.Prometheus{Address: "http://" + hanging(t), Client: &http.Client{}},
			within:  analysis.DefaultTimeout + 2*time.Second,
			want:    []string{"no answer from Prometheus at http://127.0.0.1:", "in time", "context deadline exceeded"},
			wantErr: context.DeadlineExceeded,
		},
		// With a RoundTripper of its own (Measure's recorder), net/http ends such a request by
		// its timer or by the request's deadline, whichever comes first, and words the cause
		// either way ("context deadline exceeded", "request canceled (Client.Timeout exceeded
		// ...)"): what holds is that the query ends in time and says so.
		"a Prometheus that hangs ends with the client's timeout": {
			prom:   analysis.Prometheus{Address: "http://" + hanging(t), Client: &http.Client{Timeout: 300 * time.Millisecond}},
			within: 2 * time.Second,
			want:   []string{"no answer from Prometheus at http://127.0.0.1:", "in time (", "); check that it is up"},
		},
		"a server that is not Prometheus says so": {
			prom: analysis.Prometheus{Address: func() string {
				s := httptest.NewServer(http.NotFoundHandler())
				t.Cleanup(s.Close)
				return s.URL
			}()},
			within: 2 * time.Second,
			want:   []string{"answered 404 Not Found, not with the Prometheus API"},
		},
		"an address that is not a URL says what to write": {
			prom:   analysis.Prometheus{Address: "prometheus:9090"},
			within: time.Second,
			want:   []string{`"prometheus:9090" is not an http:// or https:// URL`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // the default timeout is waited for once, while the others run
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			v, err := tc.prom.Measure(ctx, "vector(1)")
			took := time.Since(start)
			if err == nil {
				t.Fatalf("Measure = %v, want an error", v)
			}
			if took > tc.within {
				t.Errorf("Measure failed after %s, want within %s", took, tc.within)
			}
			for _, part := range tc.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%q does not say %q", err, part)
				}
			}
			for _, secret := range []string{"hunter2", "reader"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%q shows %q", err, secret)
				}
			}
			if errors.Is(err, analysis.ErrNoData) {
				t.Errorf("%q is ErrNoData, want another error", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("%q does not wrap %v", err, tc.wantErr)
			}
		})
	}
}

func TestRender(t *testing.T) {
	vars := analysis.Vars{Namespace: "ml", Model: "churn", Version: 12, Track: "canary"}
	for name, tc := range map[string]struct {
		query, want string
		wantErr     []string
	}{
		"every variable is substituted": {
			query: `rate(x{namespace="{{.Namespace}}",model="{{.Model}}",version="{{.Version}}",track="{{.Track}}"}[5m])`,
			want:  `rate(x{namespace="ml",model="churn",version="12",track="canary"}[5m])`,
		},
		"a query without variables stays as it is": {query: `sum(up)`, want: `sum(up)`},
		"spaces inside the braces are allowed":     {query: `x{v="{{ .Version }}"}`, want: `x{v="12"}`},
		"an unknown field is rejected and named": {
			query:   `x{stage="{{.Stage}}"}`,
			wantErr: []string{`the query names "{{.Stage}}" at character 10`, "{{.Namespace}}, {{.Model}}, {{.Version}} and {{.Track}}"},
		},
		"an unclosed placeholder is rejected": {
			query:   `x{model="{{.Model}"}`,
			wantErr: []string{`has a {{ without its }} at character 10`},
		},
		// Under text/template these ran without bound in time or memory inside a reconcile.
		"a loop is not run": {
			query:   `{{range 100000000}}{{end}}`,
			wantErr: []string{`the query names "{{range 100000000}}" at character 1`},
		},
		"a repetition is not run": {
			query:   `{{printf "%016777216d" 0}}`,
			wantErr: []string{`the query names "{{printf \"%016777216d\" 0}}"`},
		},
		"a long query with a typo is named by its placeholder, not quoted whole": {
			query:   strings.Repeat("sum(rate(x[1m])) + ", 200) + `{{.Vresion}}`,
			wantErr: []string{`the query names "{{.Vresion}}" at character 3801`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := analysis.Render(tc.query, vars)
			if len(tc.wantErr) == 0 {
				if err != nil || got != tc.want {
					t.Errorf("Render = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Render = %q, want an error", got)
			}
			for _, part := range tc.wantErr {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%q does not say %q", err, part)
				}
			}
			if len(err.Error()) > 200 {
				t.Errorf("the error has %d characters, more than a status message should carry: %q", len(err.Error()), err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for name, tc := range map[string]struct {
		value    float64
		min, max *float64
		ok       bool
		bound    string
	}{
		"an error rate above the max fails":        {value: 0.034, max: f(0.01), ok: false, bound: "> 0.01"},
		"an error rate below the max passes":       {value: 0.004, max: f(0.01), ok: true, bound: "<= 0.01"},
		"a value at the max passes":                {value: 0.01, max: f(0.01), ok: true, bound: "<= 0.01"},
		"an accuracy below the min fails":          {value: 0.8203, min: f(0.85), ok: false, bound: "< 0.85"},
		"an accuracy above the min passes":         {value: 0.9, min: f(0.85), ok: true, bound: ">= 0.85"},
		"a value at the min passes":                {value: 0.85, min: f(0.85), ok: true, bound: ">= 0.85"},
		"a value within both bounds passes":        {value: 0.5, min: f(0.1), max: f(0.9), ok: true, bound: "in [0.1, 0.9]"},
		"a value below both bounds misses the min": {value: 0.05, min: f(0.1), max: f(0.9), ok: false, bound: "< 0.1"},
		"a value above both bounds misses the max": {value: 1.5, min: f(0.1), max: f(0.9), ok: false, bound: "> 0.9"},
		"no bound passes anything":                 {value: -7, ok: true, bound: "(no bound)"},
		"NaN passes no bound":                      {value: math.NaN(), min: f(0), max: f(1), ok: false, bound: "is not a number"},
		"large bounds keep their digits":           {value: 250, max: f(1234567.5), ok: true, bound: "<= 1.2345675e+06"},
	} {
		t.Run(name, func(t *testing.T) {
			ok, bound := analysis.Check(tc.value, tc.min, tc.max)
			if ok != tc.ok || bound != tc.bound {
				t.Errorf("Check(%v) = %v, %q; want %v, %q", tc.value, ok, bound, tc.ok, tc.bound)
			}
		})
	}
}
