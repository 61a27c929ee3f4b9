package analysis

import (
	"errors"
	"strings"
	"testing"
)

// The answers below have the shapes of Prometheus' /api/v1/query documentation and of what
// v0.316.0 answers; the tests against a real server cover the same paths end to end.
func TestDecode(t *testing.T) {
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
		"a string is not a number": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"string","result":[1764285000,"hello"]}}`,
			wantErr: []string{"yields a string, not a number"},
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
		"a success without data is an error": {
			status:  200,
			body:    `{"status":"success"}`,
			wantErr: []string{"without data"},
		},
		"a sample whose value is not a number is an error": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1764285000,"one"]}}`,
			wantErr: []string{`sample value "one"`},
		},
		"a malformed sample is an error": {
			status:  200,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1764285000]}}`,
			wantErr: []string{"cannot read Prometheus' sample [1764285000]"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decode(tc.status, []byte(tc.body))
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if got != tc.want {
					t.Errorf("decode = %v, want %v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("decode = %v, want an error", got)
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

func TestDecodeRefusesWhatIsNotTheAPI(t *testing.T) {
	for name, body := range map[string]string{
		"an HTML page":            "<html><body>Bad Gateway</body></html>",
		"JSON of another API":     `{"kind":"Status","status":"Failure"}`,
		"an empty answer":         "",
		"a truncated API answer":  `{"status":"success","data":{"resultType":"vec`,
		"JSON that is not object": `[1, 2]`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decode(502, []byte(body)); !errors.Is(err, errNotAPI) {
				t.Errorf("decode = %v, want errNotAPI", err)
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
