package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// lockedBuffer is a bytes.Buffer that the dashboard writes while the spec reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningDashboard is `kubectl podium dashboard` running in-process until the spec ends.
type runningDashboard struct {
	url    string // the printed URL, with its token
	origin string // http://127.0.0.1:PORT
	token  string
}

var dashboardURL = regexp.MustCompile(`(http://[0-9.]+:[0-9]+)/\?token=([A-Za-z0-9_-]+)`)

// startDashboard runs the dashboard on namespace ns with the kubeconfig file and the extra flags,
// on a free port, and stops it when the spec ends.
func startDashboard(kubeconfigFile, ns string, args ...string) runningDashboard {
	GinkgoHelper()
	var out, errOut lockedBuffer
	cmd := newRootCommand(&root{
		streams:      genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut},
		now:          time.Now,
		pollInterval: 100 * time.Millisecond,
	})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfigFile, "--namespace", ns, "dashboard", "--port", "0"}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	DeferCleanup(func() {
		cancel()
		Eventually(done).WithTimeout(10*time.Second).Should(Receive(BeNil()), "the dashboard stops on its context")
	})
	var m []string
	Eventually(func() []string {
		m = dashboardURL.FindStringSubmatch(out.String())
		return m
	}).ShouldNot(BeEmpty(), "the dashboard prints its URL; stderr: %s", errOut.String())
	return runningDashboard{url: m[0], origin: m[1], token: m[2]}
}

// browserless is an HTTP client with a cookie jar that does not follow redirects.
func browserless() *http.Client {
	jar, err := cookiejar.New(nil)
	Expect(err).NotTo(HaveOccurred())
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(c *http.Client, req *http.Request) (int, string, http.Header) {
	GinkgoHelper()
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body), resp.Header
}

func newRequest(method, target string, body io.Reader) *http.Request {
	GinkgoHelper()
	req, err := http.NewRequest(method, target, body)
	Expect(err).NotTo(HaveOccurred())
	return req
}

var _ = Describe("kubectl podium dashboard, over HTTP", func() {
	It("serves only the browser that opened the printed URL, and takes actions only as posts from its own pages",
		func(ctx context.Context) {
			ns := newNamespace(ctx)
			seedStory(ctx, ns)
			d := startDashboard(kubeconfig, ns)
			c := browserless()

			By("refusing a browser without the token, or with another one")
			status, body, header := fetch(c, newRequest(http.MethodGet, d.origin+"/", nil))
			Expect(status).To(Equal(http.StatusUnauthorized))
			Expect(body).To(ContainSubstring("open the URL that kubectl podium dashboard printed"))
			Expect(header.Get("Content-Security-Policy")).To(ContainSubstring("script-src 'self'"))
			status, _, _ = fetch(c, newRequest(http.MethodGet, d.origin+"/?token=not-"+d.token, nil))
			Expect(status).To(Equal(http.StatusUnauthorized))

			By("refusing another host name, as a DNS rebinding would send")
			req := newRequest(http.MethodGet, d.url, nil)
			req.Host = "attacker.example:80"
			status, _, _ = fetch(c, req)
			Expect(status).To(Equal(http.StatusMisdirectedRequest))

			By("setting the token as a cookie from the printed URL, and taking it out of the address")
			status, _, header = fetch(c, newRequest(http.MethodGet, d.url, nil))
			Expect(status).To(Equal(http.StatusSeeOther))
			Expect(header.Get("Location")).To(Equal("/"))
			Expect(header.Get("Set-Cookie")).To(And(ContainSubstring("HttpOnly"), ContainSubstring("SameSite=Strict")))
			status, body, _ = fetch(c, newRequest(http.MethodGet, d.origin+"/", nil))
			Expect(status).To(Equal(http.StatusOK))
			Expect(body).To(ContainSubstring(`href="/namespaces/` + ns + `/models/battle-winner-predictor"`))

			By("refusing a model of another namespace, which this dashboard does not show")
			status, body, _ = fetch(c, newRequest(http.MethodGet, d.origin+"/namespaces/kube-system/models/"+seed, nil))
			Expect(status).To(Equal(http.StatusNotFound))
			Expect(body).To(ContainSubstring("This dashboard shows namespace " + ns + "; start it with -n kube-system, or with -A"))

			model := d.origin + "/namespaces/" + ns + "/models/" + seed
			actions := model + "/actions"
			form := url.Values{"action": {"rollback"}, "version": {"3"}}
			post := func(form url.Values, header map[string]string) (int, string) {
				req := newRequest(http.MethodPost, actions, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range header {
					req.Header.Set(k, v)
				}
				status, body, _ := fetch(c, req)
				return status, body
			}
			By("refusing an action by GET, without the form's token, or from another site")
			status, _, _ = fetch(c, newRequest(http.MethodGet, actions+"?action=rollback&version=3", nil))
			Expect(status).To(Equal(http.StatusMethodNotAllowed))
			status, body = post(form, map[string]string{"Origin": d.origin})
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(body).To(ContainSubstring("the form&#39;s token is missing"))

			confirm := model + "/confirm?action=rollback&version=3"
			status, body, _ = fetch(c, newRequest(http.MethodGet, confirm, nil))
			Expect(status).To(Equal(http.StatusOK))
			token := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
			Expect(token).To(HaveLen(2), "the confirmation page holds the form's token")
			form.Set("csrf", token[1])
			status, body = post(form, map[string]string{"Origin": "http://attacker.example"})
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(body).To(ContainSubstring("came from another site"))
			status, _ = post(form, map[string]string{"Origin": d.origin, "Sec-Fetch-Site": "cross-site"})
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(stages(ctx, ns)).To(Equal("2=None 3=Archived 4=Production"), "nothing refused changed anything")

			By("rolling back from the dashboard's own form")
			status, body = post(form, map[string]string{"Origin": d.origin, "Sec-Fetch-Site": "same-origin"})
			Expect(status).To(Equal(http.StatusOK), body)
			Expect(body).To(ContainSubstring("Asked for version 3 of battle-winner-predictor as Production"))
			Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production 4=Archived"))
		})

	It("shows the models of every namespace with -A, and acts in the model's own", func(ctx context.Context) {
		first, second := newNamespace(ctx), newNamespace(ctx)
		seedStory(ctx, first)
		create(ctx, seedModel(second))
		d := startDashboard(kubeconfig, first, "-A")
		c := browserless()
		fetch(c, newRequest(http.MethodGet, d.url, nil))
		status, body, _ := fetch(c, newRequest(http.MethodGet, d.origin+"/", nil))
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(And(ContainSubstring("every namespace"),
			ContainSubstring(`href="/namespaces/`+first+`/models/battle-winner-predictor"`),
			ContainSubstring(`href="/namespaces/`+second+`/models/battle-winner-predictor"`)))
		status, body, _ = fetch(c, newRequest(http.MethodGet, d.origin+"/namespaces/"+second+"/models/"+seed, nil))
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(ContainSubstring("in " + second))

		By("rolling back in the first namespace from the dashboard started in it with -A")
		model := d.origin + "/namespaces/" + first + "/models/" + seed
		_, body, _ = fetch(c, newRequest(http.MethodGet, model+"/confirm?action=rollback&version=3", nil))
		token := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
		Expect(token).To(HaveLen(2))
		form := url.Values{"action": {"rollback"}, "version": {"3"}, "csrf": {token[1]}}
		req := newRequest(http.MethodPost, model+"/actions", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", d.origin)
		status, body, _ = fetch(c, req)
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(ContainSubstring("Asked for version 3 of battle-winner-predictor as Production"))
		Eventually(stages).WithArguments(ctx, first).Should(Equal("2=None 3=Production 4=Archived"))
	})
})
