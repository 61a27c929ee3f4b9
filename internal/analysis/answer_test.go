package analysis

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/model"
)

// answering is a server that answers every request with status and body.
func answering(t *testing.T, status int, body string) Prometheus {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return Prometheus{Address: s.URL}
}

// The answers below have the shapes of Prometheus' /api/v1/query documentation and of what
// v0.316.0 answers, read through the API client as from a real server; the tests against a real
// Prometheus cover the common paths end to end.
func TestMeasureReadsAnswers(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
		want   float64
		// wantErr are parts of the error's message; none means no error.
		wantErr []string
		noData  bool
	}{
		"a vector of one series is its value": {
			status: 200,
			body:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"2"},"value":[1764285000.123,"0.034"]}]}}`,
			want:   0.034,
		},
		"a vector of one series without labels, as sum() answers, is its value": {
			status: 200,
			body:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764285000,"12"]}]}}`,
			want:   12,
		},
		"a scalar is its value": {
			status: 200,
			body:   `{"status":"success","data":{"resultType":"scalar","result":[1764285000,"-1.5e-3"]}}`,
			want:   -0.0015,
		},
		"warnings do not hide the value": {
			status: 200,
			body:   `{"status":"success","data":{"resultType":"scalar","result":[1764285000,"1"]},"warnings":["PromQL warning"],"infos":["x"]}`,
			want:   1,
		},
		"an empty vector is no data": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"vector","result":[]}}`,
			wantErr: []string{"no data", "matched no series"},
			noData:  true,
		},
		"NaN is no data": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764285000,"NaN"]}]}}`,
			wantErr: []string{"no data", "NaN", "wait for traffic"},
			noData:  true,
		},
		"+Inf is no data": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764285000,"+Inf"]}]}}`,
			wantErr: []string{"no data", "+Inf"},
			noData:  true,
		},
		"a scalar -Inf is no data": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1764285000,"-Inf"]}}`,
			wantErr: []string{"no data", "-Inf"},
			noData:  true,
		},
		"two series ask for an aggregation and show their labels": {
			status: 200,
			body: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"version":"2","code":"200"},"value":[1764285000,"1"]},` +
				`{"metric":{"version":"2","code":"500"},"value":[1764285000,"2"]},` +
				`{"metric":{"version":"2","code":"503"},"value":[1764285000,"3"]}]}}`,
			wantErr: []string{`3 series ({code="200", version="2"}, {code="500", version="2"}, …)`, "sum() or max()"},
		},
		"a native histogram asks for a number from it": {
			status: 200,
			body: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{},"histogram":[1764285000,{"count":"2","sum":"3","buckets":[[0,"0.5","1","2"]]}]}]}}`,
			wantErr: []string{"native histogram", "histogram_quantile()"},
		},
		"a range vector asks for an instant one": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764285000,"1"]]}]}}`,
			wantErr: []string{"range vector", "rate(m[5m])"},
		},
		"a string, which the API client cannot read, is an error": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"string","result":[1764285000,"hello"]}}`,
			wantErr: []string{"cannot read the answer of Prometheus", `unexpected value type "string"`},
		},
		"a PromQL error shows Prometheus' type and text": {
			status:  400,
			body:    `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected \"}\""}`,
			wantErr: []string{`answered 400 bad_data: invalid parameter "query": 1:5: parse error: unexpected "}"; fix the query`},
		},
		"an error on several lines becomes one": {
			status:  422,
			body:    `{"status":"error","errorType":"execution","error":"found duplicate series\nfor the match group"}`,
			wantErr: []string{"execution: found duplicate series for the match group; fix the query"},
		},
		"a query timeout says how to avoid it": {
			status:  503,
			body:    `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`,
			wantErr: []string{"503 timeout", "--query.timeout"},
		},
		"an internal error shows Prometheus' type and text": {
			status:  500,
			body:    `{"status":"error","errorType":"internal","error":"out of memory"}`,
			wantErr: []string{"500 internal: out of memory", "check Prometheus' health"},
		},
		"a success without data is an error": {
			status:  200,
			body:    `{"status":"success"}`,
			wantErr: []string{"cannot read the answer of Prometheus at http://127.0.0.1:"},
		},
		"a sample whose value is not a number is an error": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1764285000,"one"]}}`,
			wantErr: []string{"cannot read the answer of Prometheus", "one"},
		},
		"a malformed sample is an error": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1764285000]}}`,
			wantErr: []string{"cannot read the answer of Prometheus"},
		},
		"an answer of more than a MiB asks for an aggregation": {
			status: 200,
			body: `{"status":"success","data":{"resultType":"vector","result":[` +
				strings.Repeat(`{"metric":{"pod":"serving-0123456789"},"value":[1764285000,"1"]},`, 20000) +
				`{"metric":{},"value":[1764285000,"1"]}]}}`,
			wantErr: []string{"more than 1048576 bytes", "sum() or max()"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := answering(t, tc.status, tc.body).Measure(t.Context(), "q")
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Measure: %v", err)
				}
				if got != tc.want {
					t.Errorf("Measure = %v, want %v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Measure = %v, want an error", got)
			}
			for _, part := range tc.wantErr {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%q does not say %q", err, part)
				}
			}
			if errors.Is(err, ErrNoData) != tc.noData {
				t.Errorf("errors.Is(%q, ErrNoData) = %v, want %v", err, !tc.noData, tc.noData)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("%q is not one line", err)
			}
		})
	}
}

// TestValue covers the results that the API client's answers above cannot produce.
func TestValue(t *testing.T) {
	for name, tc := range map[string]struct {
		v    model.Value
		want string
	}{
		"a string is not a number": {&model.String{Value: "hello"}, "yields a string, not a number"},
		"no result is no data":     {nil, "success without data"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := value(tc.v); err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrNoData) {
				t.Errorf("value(%v) = %v, want an error that says %q", tc.v, err, tc.want)
			}
		})
	}
}

func TestMeasureRefusesWhatIsNotTheAPI(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
	}{
		"an HTML page":                   {502, "<html><body>Bad Gateway</body></html>"},
		"JSON of another API":            {403, `{"kind":"Status","status":"Failure"}`},
		"an empty answer":                {502, ""},
		"a truncated API answer":         {503, `{"status":"error","errorType":"timeo`},
		"JSON that is not an object":     {500, `[1, 2]`},
		"an HTML page with a 200":        {200, "<html><body>Welcome</body></html>"},
		"a success with a 400 is no API": {400, `{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := answering(t, tc.status, tc.body).Measure(t.Context(), "q")
			if err == nil || !strings.Contains(err.Error(), "not with the Prometheus API") {
				t.Errorf("Measure = %v, want an error that says the answer is not the API's", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for name, tc := range map[string]struct{ address, want string }{
		"an address without secrets stays":     {"http://prometheus.monitoring:9090", "http://prometheus.monitoring:9090"},
		"user and password go":                 {"https://reader:hunter2@prom.example/prefix", "https://prom.example/prefix"},
		"a query and a fragment go":            {"http://prom:9090/?token=hunter2#hunter2", "http://prom:9090/"},
		"an unparsable address loses them too": {"http://reader:hunter2@prom:90 90/?token=hunter2", "prom:90 90/"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := redact(tc.address); got != tc.want {
				t.Errorf("redact(%q) = %q, want %q", tc.address, got, tc.want)
			}
		})
	}
}

// An address that redirects elsewhere does not make the operator send its query there: a policy
// that pins the address pins where the operator's requests go.
func TestMeasureFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1764285000,"0"]}}`))
	}))
	t.Cleanup(target.Close)
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/api/v1/query?token=secret", code)
		}))
		_, err := Prometheus{Address: redirecting.URL}.Measure(t.Context(), "sum(up)")
		redirecting.Close()
		if err == nil {
			t.Fatalf("%d: a redirect gave a value", code)
		}
		for _, part := range []string{"with a redirect to " + target.URL + "/api/v1/query", "follows no redirects", fmt.Sprint(code)} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("%d: %q does not say %q", code, err, part)
			}
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%d: the error shows the redirect's query: %q", code, err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the server the redirects pointed to got %d requests", n)
	}
}
