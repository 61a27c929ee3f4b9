package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/testbrowser"
	"github.com/podium-dev/podium/internal/testenv"
)

// The dashboard in a real headless Chromium (Debian's, hack/chromium.sh), against the suite's API
// server with the real operator. The screenshots of docs/dashboard.md come from these specs, so
// that they show what the dashboard shows; PODIUM_SCREENSHOTS=DIR writes them there
// (make dashboard-screenshots), and otherwise into the spec's temporary directory.

// browser opens the dashboard's printed URL in a new Chromium and returns its tab.
func browser(d runningDashboard) context.Context {
	GinkgoHelper()
	tab := testbrowser.Start(GinkgoT())
	console := testbrowser.WatchConsole(GinkgoT(), tab)
	DeferCleanup(func() {
		Expect(console.Errors()).To(BeEmpty(), "the page wrote errors to the console (a refused script or style, say)")
	})
	act(tab, chromedp.Navigate(d.url), chromedp.WaitVisible(chromedp.CSS("main")))
	return tab
}

// act runs the browser actions, each within 15 s.
func act(tab context.Context, actions ...chromedp.Action[chromedp.Void]) {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		page, cancel := context.WithTimeout(tab, 5*time.Second)
		defer cancel()
		location, _ := chromedp.Run(page, chromedp.Location())
		body, _ := chromedp.Run(page, chromedp.Evaluate[string](`document.body.innerText`))
		Fail(fmt.Sprintf("in the browser: %v; the tab shows %s:\n%s", err, location, body))
	}
}

// evaluate is the value of a JavaScript expression in the tab.
func evaluate[T any](tab context.Context, expression string) T {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	Expect(err).NotTo(HaveOccurred())
	return v
}

// text is the text of the first element the selector matches, "" when none does.
func text(tab context.Context, selector string) string {
	GinkgoHelper()
	out := evaluate[string](tab, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, selector))
	return strings.Join(strings.Fields(out), " ")
}

func count(tab context.Context, selector string) int {
	GinkgoHelper()
	return evaluate[int](tab, fmt.Sprintf(`document.querySelectorAll(%q).length`, selector))
}

func screenshot(tab context.Context, name string) {
	GinkgoHelper()
	dir := os.Getenv("PODIUM_SCREENSHOTS")
	if dir == "" {
		dir = GinkgoT().TempDir()
	}
	testbrowser.Screenshot(GinkgoT(), tab, filepath.Join(dir, name))
}

var _ = Describe("kubectl podium dashboard, in a browser", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("lists the models and follows a promotion as it happens", func(ctx context.Context) {
		seedStory(ctx, ns)
		tab := browser(startDashboard(kubeconfig, ns))
		Expect(text(tab, `tr[data-model="battle-winner-predictor"] .production`)).To(Equal("version 4"))
		Expect(text(tab, `tr[data-model="battle-winner-predictor"] .description`)).To(Equal("Predicts the winner of a battle"))
		screenshot(tab, "models.png")

		By("registering version 5, which passes the gate: the page shows it Production without a reload")
		registerSeed(ctx, ns, 5, "0.9011")
		Eventually(func() string { return text(tab, `tr[data-model="battle-winner-predictor"] .production`) }).
			Should(Equal("version 5"))
		Expect(text(tab, "body")).NotTo(ContainSubstring("Not kept up to date"))
	})

	It("compares versions against the gates, draws their trend, and shows the timeline of the history",
		func(ctx context.Context) {
			seedStory(ctx, ns)
			tab := browser(startDashboard(kubeconfig, ns))
			act(tab, chromedp.Click(chromedp.CSS(`tr[data-model="battle-winner-predictor"] a`)),
				chromedp.WaitVisible(chromedp.CSS(`table.versions`)))

			By("marking each gate cell with its verdict, in words too")
			Expect(text(tab, `tr[data-version="2"] td.gate`)).To(Equal("0.8203 ✗ fail"))
			Expect(text(tab, `tr[data-version="4"] td.gate`)).To(Equal("0.8723 ✓ pass"))

			By("ticking versions 2 and 4 and comparing them")
			act(tab, chromedp.Click(chromedp.CSS(`input[name=compare][value="2"]`)),
				chromedp.Click(chromedp.CSS(`input[name=compare][value="4"]`)),
				chromedp.Click(chromedp.CSS(`form.compare-form button[type=submit]`)),
				chromedp.WaitVisible(chromedp.CSS(`table.compare`)))
			Expect(text(tab, `table.compare thead`)).To(Equal("version 2 version 4"))
			Expect(text(tab, `table.compare tr.differs[data-row="test_accuracy"]`)).To(Equal("test_accuracy ≠ 0.8203 0.8723"))
			Expect(text(tab, `table.compare tr[data-row="overfitting"]:not(.differs)`)).To(Equal("overfitting 0.0233 0.0233"))
			Expect(text(tab, `table.compare tr[data-row="gates"]`)).To(Equal("gates ≠ fail: test_accuracy 0.8203 < 0.85 1/1"))
			Expect(count(tab, `table.compare tr.differs`)).To(BeNumerically(">=", 3), "stage, accuracy, gates and artifact differ")

			By("drawing test_accuracy over the versions, with Production marked")
			Expect(count(tab, `figure[data-metric="test_accuracy"] g.point`)).To(Equal(3))
			Expect(count(tab, `figure[data-metric="test_accuracy"] g.point.production[data-version="4"]`)).To(Equal(1))
			Expect(count(tab, `figure[data-metric="test_accuracy"] g.point.fail[data-version="2"]`)).To(Equal(1))
			Expect(count(tab, `figure[data-metric="test_accuracy"] line.bound`)).To(Equal(1))

			By("listing every transition of the history, in order")
			model := getModel(ctx, ns)
			Expect(count(tab, `table.timeline tbody tr`)).To(Equal(len(model.Status.History)))
			last := model.Status.History[len(model.Status.History)-1]
			Expect(text(tab, `table.timeline tbody tr:last-child`)).To(ContainSubstring(
				fmt.Sprintf("%d %s %s %s %s", last.Version, orDash(last.From), last.To, last.Reason, orDash(last.By))))

			By("answering what served at a time, as history --at does")
			at := last.Time.Add(time.Second).UTC().Format(time.RFC3339)
			act(tab, chromedp.SetValue(chromedp.ID("at"), at), chromedp.Click(chromedp.CSS(`form.at-form button`)),
				chromedp.WaitVisible(chromedp.CSS(`.at-answer`)))
			Expect(text(tab, ".at-answer")).To(Equal(strings.TrimSpace(succeed(ctx, ns, "history", seed, "--at", at))))
			Expect(count(tab, `table.compare`)).To(Equal(1), "the comparison stays")
			screenshot(tab, "model.png")
		})

	It("shows what the cluster holds as text, never as markup", func(ctx context.Context) {
		m := seedModel(ns)
		m.Spec.Description = `<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">`
		create(ctx, m)
		v := seedVersion(ns, 1, "0.5")
		v.Spec.Description = `</td><script>window.pwned = 3</script>`
		create(ctx, v)
		d := startDashboard(kubeconfig, ns)
		tab := browser(d)
		Expect(text(tab, `tr[data-model="battle-winner-predictor"] .description`)).To(Equal(m.Spec.Description))
		act(tab, chromedp.Navigate(d.origin+"/namespaces/"+ns+"/models/battle-winner-predictor"),
			chromedp.WaitVisible(chromedp.CSS(`table.versions`)))
		Expect(text(tab, `tr[data-version="1"] .description`)).To(Equal(v.Spec.Description))
		Expect(evaluate[bool](tab, `window.pwned !== undefined || document.querySelectorAll("main script, main img").length > 0`)).
			To(BeFalse(), "markup from the cluster ran or was inserted")
	})

	It("runs a canary's panel as it advances, and lets an approver act while it disables a viewer's actions",
		func(ctx context.Context) {
			startCanary(ctx, ns, step(25, 2*time.Second), step(50, 2*time.Second))
			viewer := []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
				Resources: []string{"registeredmodels", "modelversions", "stagerecords"}, Verbs: []string{"get", "list", "watch"}}}
			grantUser(ctx, ns, "vera", viewer...)

			By("opening the model as vera, who may only read: every action is disabled, with the reason")
			veras := startDashboard(kubeconfig, ns, "--as", "vera")
			vera := browser(veras)
			act(vera, chromedp.Navigate(veras.origin+"/namespaces/"+ns+"/models/battle-winner-predictor"),
				chromedp.WaitVisible(chromedp.CSS(`section.rollout`)))
			Expect(text(vera, "#denied")).To(ContainSubstring("The API server says you may not patch modelversions in namespace " + ns))
			Expect(count(vera, `section.rollout button[disabled]`)).To(Equal(2), "pause and abort")
			Expect(count(vera, `section.rollout a.button`)).To(BeZero())
			Expect(evaluate[string](vera, `document.querySelector("section.rollout button[disabled]").title`)).
				To(ContainSubstring("may not patch registeredmodels"))

			By("opening it as the suite's administrator, while the canary's pods come up and its steps pass")
			d := startDashboard(kubeconfig, ns)
			tab := browser(d)
			act(tab, chromedp.Navigate(d.origin+"/namespaces/"+ns+"/models/battle-winner-predictor"),
				chromedp.WaitVisible(chromedp.CSS(`section.rollout`)))
			Expect(text(tab, "section.rollout h2")).To(Equal("Rollout of version 4: Progressing"))
			Expect(text(tab, "ol.steps li.current")).To(HavePrefix("▶ step 1: 25%"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(text(tab, "ol.steps li.current")).To(HavePrefix("▶ step 2: 50%"))
			}).WithTimeout(30 * time.Second).Should(Succeed())
			Expect(text(tab, "ol.steps li.done")).To(HavePrefix("✓ step 1"))
			screenshot(tab, "canary.png")

			By("aborting it from the browser, through its confirmation page")
			act(tab, chromedp.Navigate(evaluate[string](tab, `document.querySelector("section.rollout a.button[href$='action=abort']").href`)),
				chromedp.WaitVisible(chromedp.ID("confirm")))
			Expect(text(tab, "#what")).To(ContainSubstring("write spec.stage: Archived on its candidate"))
			Expect(stages(ctx, ns)).To(Equal("3=Production 4=Staging"), "the confirmation page changes nothing")
			screenshot(tab, "confirm.png")
			act(tab, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("outcome")))
			Expect(text(tab, "#outcome")).To(Equal("Asked to abort the canary rollout of version 4 of battle-winner-predictor " +
				"(wrote spec.stage: Archived on ModelVersion battle-winner-predictor-4)"))
			Eventually(func(g Gomega) {
				playDeployments(ctx, g, ns)
				g.Expect(getModel(ctx, ns).Status.Rollout.Phase).To(Equal(mlv1.RolloutAborted))
			}).Should(Succeed())
			Eventually(stages).WithArguments(ctx, ns).Should(Equal("3=Production 4=Archived"))
		})

	It("has an approver's promotion go through as them, and shows a non-approver the API server's refusal",
		func(ctx context.Context) {
			governNamespace(ctx, ns, "alice")
			seedStory(ctx, ns)
			writer := []rbacv1.PolicyRule{{APIGroups: []string{mlv1.GroupVersion.Group},
				Resources: []string{"registeredmodels", "modelversions", "stagerecords"},
				Verbs:     []string{"get", "list", "watch", "patch"}}}
			grantUser(ctx, ns, "alice", writer...)
			grantUser(ctx, ns, "bob", writer...)

			By("promoting version 3 as bob, who may patch but is no approver: the refusal, verbatim")
			bobs := startDashboard(kubeconfig, ns, "--as", "bob")
			bob := browser(bobs)
			act(bob, chromedp.Navigate(bobs.origin+"/namespaces/"+ns+"/models/battle-winner-predictor/confirm?action=promote&version=3"),
				chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("outcome")))
			Expect(text(bob, "h1")).To(Equal("Promote: refused"))
			Expect(text(bob, "#outcome")).To(ContainSubstring("user bob may not request spec.stage: Production in namespace " +
				ns + ": the ConfigMap podium-governance there lets only its approvers promote or archive versions"))
			Expect(stages(ctx, ns)).To(Equal("2=None 3=Archived 4=Production"))

			By("promoting it as alice, an approver, from the versions table")
			alices := startDashboard(kubeconfig, ns, "--as", "alice")
			alice := browser(alices)
			act(alice, chromedp.Navigate(alices.origin+"/namespaces/"+ns+"/models/battle-winner-predictor"),
				chromedp.Click(chromedp.CSS(`tr[data-version="3"] a.button`)), chromedp.WaitVisible(chromedp.ID("confirm")),
				chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("outcome")))
			Expect(text(alice, "#outcome")).To(Equal("Asked for version 3 of battle-winner-predictor as Production"))
			Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production 4=Archived"))
			act(alice, chromedp.Navigate(alices.origin+"/namespaces/"+ns+"/models/battle-winner-predictor"),
				chromedp.WaitVisible(chromedp.CSS("table.timeline")))
			Eventually(func() string { return text(alice, "table.timeline tbody tr:last-child") }).
				Should(MatchRegexp(`^\S+ 3 Archived Production \S+ alice`), "the history names the approver")
		})
})

// grantUser lets user do what the rules allow in ns.
func grantUser(ctx context.Context, ns, user string, rules ...rbacv1.PolicyRule) {
	GinkgoHelper()
	create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: rules},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}})
}

// governLabel marks the namespaces where the suite's governance policies hold.
const governLabel = "podium.test/governed"

// governNamespace installs the governance admission policies of config/governance for ns alone,
// until the spec ends, and makes approvers its approvers (the ConfigMap podium-governance).
func governNamespace(ctx context.Context, ns string, approvers string) {
	GinkgoHelper()
	objs, err := testenv.ConfigObjects(filepath.Join("..", "..", "config", "governance"), testScheme)
	Expect(err).NotTo(HaveOccurred())
	match := &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{governLabel: ns}}}
	for _, obj := range objs {
		obj.SetName(obj.GetName() + "-" + ns)
		switch o := obj.(type) {
		case *admissionv1.ValidatingAdmissionPolicyBinding:
			o.Spec.PolicyName += "-" + ns
			o.Spec.MatchResources = match
		case *admissionv1.MutatingAdmissionPolicyBinding:
			o.Spec.PolicyName += "-" + ns
			o.Spec.MatchResources = match
		}
		create(ctx, obj)
		DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, obj)).To(Succeed()) })
	}
	namespace := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, namespace)).To(Succeed())
	namespace.Labels[governLabel] = ns
	Expect(k8sClient.Update(ctx, namespace)).To(Succeed())
	create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "podium-governance"},
		Data: map[string]string{"approvers": approvers}})
	By("waiting for the API server to enforce the policies, with a dry run")
	Eventually(func(g Gomega) {
		v := seedVersion(ns, 1, "0.5")
		g.Expect(k8sClient.Create(ctx, v, client.DryRunAll)).To(Succeed())
		g.Expect(v.Annotations).To(HaveKey(mlv1.AnnotationRegisteredBy))
	}).Should(Succeed())
}
