package testprometheus_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podium-dev/podium/internal/testprometheus"
)

func TestStartScrapesTheTargetsAndStopsWithTheTest(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "podium_test_answer", ConstLabels: prometheus.Labels{"job": "mine"}})
	g.Set(42)
	reg.MustRegister(g)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	var address string
	t.Run("a server", func(t *testing.T) {
		s := testprometheus.Start(t, []string{strings.TrimPrefix(target.URL, "http://")})
		address = s.Address
		if !strings.HasPrefix(s.Address, "http://127.0.0.1:") {
			t.Errorf("Address = %q, want http://127.0.0.1:PORT", s.Address)
		}
		// honor_labels keeps the target's job label over the scrape config's.
		gomega.NewWithT(t).Eventually(func() (string, error) {
			return instantQuery(s.Address, `podium_test_answer{job="mine"}`)
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(gomega.Equal("42"))
	})
	if address == "" {
		return // skipped: no binary
	}
	// The clean-up waited for the process to exit, so nothing listens on its port any more.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(address, "http://"), time.Second)
	if err == nil {
		_ = conn.Close()
		t.Errorf("Prometheus still listens at %s after its test ended", address)
	}
}

// instantQuery returns the value of a query's first sample, "" when there is none yet.
func instantQuery(address, query string) (string, error) {
	resp, err := http.Get(address + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return "", err
	}
	if len(answer.Data.Result) == 0 {
		return "", nil
	}
	v, _ := answer.Data.Result[0].Value[1].(string)
	return v, nil
}
