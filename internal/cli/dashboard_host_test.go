package cli

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestTheDashboardAnswersTheHostsOfItsAddress: on a loopback address, only its own host names
// (a DNS rebinding names another); on another address, whose names the dashboard cannot know,
// any host with the token, as a machine's name or IP reaches it. An action's Origin must be the
// host the request was made to, whichever it is.
func TestTheDashboardAnswersTheHostsOfItsAddress(t *testing.T) {
	for _, tc := range []struct {
		addr, host string
		want       int
	}{
		{"127.0.0.1:8765", "127.0.0.1:8765", http.StatusNotFound},
		{"127.0.0.1:8765", "localhost:8765", http.StatusNotFound},
		{"127.0.0.1:8765", "attacker.example:8765", http.StatusMisdirectedRequest},
		{"[::1]:8765", "[::1]:8765", http.StatusNotFound},
		{"0.0.0.0:8765", "build-box.example:8765", http.StatusNotFound},
		{"192.0.2.7:8765", "192.0.2.7:8765", http.StatusNotFound},
	} {
		d, err := newDashboard(&root{}, &cluster{namespace: "ml"}, tc.addr, false)
		if err != nil {
			t.Fatal(err)
		}
		send := func(method, path string, header map[string]string, body string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(method, path, strings.NewReader(body))
			req.Host = tc.host
			req.AddCookie(&http.Cookie{Name: dashboardCookie, Value: d.token})
			for k, v := range header {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			d.ServeHTTP(w, req)
			return w
		}
		// A page that does not exist answers 404 once the guards let the request through.
		if got := send(http.MethodGet, "/no-such-page", nil, "").Code; got != tc.want {
			t.Errorf("listening on %s, a request for host %s: %d, want %d", tc.addr, tc.host, got, tc.want)
		}
		if tc.want != http.StatusNotFound {
			continue
		}
		form := url.Values{"action": {"pause"}, "csrf": {d.csrf}}.Encode()
		header := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://other.example"}
		w := send(http.MethodPost, "/namespaces/ml/models/m/actions", header, form)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "came from another site") {
			t.Errorf("listening on %s, a post from another origin to host %s: %d %s", tc.addr, tc.host, w.Code, w.Body)
		}
	}
}
