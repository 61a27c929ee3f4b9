//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck

	"github.com/podium-dev/podium/internal/testbrowser"
)

// The dashboard spec runs the real `kubectl podium dashboard` (bin/kubectl-podium, found by the
// pinned kubectl) against the kwok cluster and the suite's manager, and drives it in headless
// Chromium: the models page follows the seed's promotions as they happen, and a rollback made
// from the browser's confirmation page is one the operator acts on.
var _ = Describe("kubectl podium dashboard", func() {
	const ns = "e2e-dashboard"

	It("follows the seed's promotions in the browser, and rolls back from it", func(ctx SpecContext) {
		managerAlive()
		createNamespace(ns)

		By("starting the dashboard with the real kubectl and plugin")
		cmd := exec.Command(filepath.Join(kubeBinDir, "kubectl"), "podium", "dashboard", "-n", ns, "--port", "0")
		cmd.Env = append(os.Environ(), pluginEnv()...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdout, err := cmd.StdoutPipe()
		Expect(err).NotTo(HaveOccurred())
		Expect(cmd.Start()).To(Succeed())
		DeferCleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			_ = cmd.Wait()
		})
		urls := make(chan string, 1)
		go func() {
			scanner := bufio.NewScanner(stdout)
			for scanner.Scan() {
				if u := regexp.MustCompile(`http://\S+token=\S+`).FindString(scanner.Text()); u != "" {
					urls <- u
				}
			}
		}()
		var url string
		Eventually(urls).WithTimeout(30 * time.Second).Should(Receive(&url))
		origin := url[:strings.Index(url, "/?")]

		tab := testbrowser.Start(GinkgoT())
		do := func(actions ...chromedp.Action[chromedp.Void]) {
			GinkgoHelper()
			actx, cancel := context.WithTimeout(tab, 20*time.Second)
			defer cancel()
			Expect(chromedp.Do(actx, actions...)).To(Succeed())
		}
		text := func(selector string) string {
			actx, cancel := context.WithTimeout(tab, 10*time.Second)
			defer cancel()
			out, err := chromedp.Run(actx, chromedp.Evaluate[string](
				`(document.querySelector(`+strconv.Quote(selector)+`) || {innerText: ""}).innerText`))
			Expect(err).NotTo(HaveOccurred())
			return strings.Join(strings.Fields(out), " ")
		}
		do(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("main")))
		Expect(text("main")).To(ContainSubstring("No models in this namespace"))

		By("applying the seed: the open page shows each promotion without a reload")
		promoteSeed(ns)
		Eventually(func() string { return text(`tr[data-model="battle-winner-predictor"] .production`) }).
			WithTimeout(30 * time.Second).Should(Equal("version 4"))

		By("rolling back to version 3 from the model's page")
		do(chromedp.Navigate(origin+"/namespaces/"+ns+"/models/battle-winner-predictor"),
			chromedp.Click(chromedp.CSS(`a.button[href$="action=rollback&version=3"]`)),
			chromedp.WaitVisible(chromedp.ID("confirm")), chromedp.Click(chromedp.ID("confirm")),
			chromedp.WaitVisible(chromedp.ID("outcome")))
		Expect(text("#outcome")).To(Equal("Asked for version 3 of battle-winner-predictor as Production"))
		seedStage(ns, "3").Should(Equal("Production"))
		seedStage(ns, "4").Should(Equal("Archived"))
	})
})
