//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// The failover spec runs two managers that compete for a Lease of their own and watch only the
// spec's namespace, and takes their leader away twice while a goroutine keeps registering
// versions and requesting stages on one Automatic model: first it freezes the leader with
// SIGSTOP until the other has taken over and made a decision of its own, then resumes it; then it
// kills the new leader with SIGKILL in the middle of a promotion. A watch over every ModelVersion
// of the namespace fails the spec if two versions were ever Production at the same instant.
//
// The suite's manager is stopped meanwhile: it watches every namespace and would act here too.
var _ = Describe("Failover between two managers", Serial, func() {
	const (
		ns        = "e2e-failover"
		model     = "failover"
		leaseName = "podium-failover"
		// The lease settings, short so that a takeover takes seconds.
		leaseDuration, renewDeadline, retryPeriod = "4s", "3s", "1s"
		// takeover bounds how long a standby may need to take over a dead leader's Lease: the lease
		// duration after the last renewal, plus retries and the slowness of a busy machine.
		takeover = 30 * time.Second
	)

	It("never shows two Production versions while the leader is frozen, resumed and killed mid-promotion",
		func(ctx SpecContext) {
			start := time.Now()
			managerAlive()
			createNamespace(ns)
			c := failoverClient()

			By("stopping the suite's manager")
			manager.stop(30 * time.Second)
			DeferCleanup(func() {
				By("starting the suite's manager again")
				startSuiteManager("manager-after-failover.log")
			})

			pw := watchProductionE2E(ctx, c, ns)
			Expect(c.Create(ctx, &mlv1.RegisteredModel{
				ObjectMeta: metav1.ObjectMeta{Name: model, Namespace: ns},
				Spec: mlv1.RegisteredModelSpec{Promotion: mlv1.Promotion{
					Mode:  mlv1.PromotionAutomatic,
					Gates: []mlv1.Gate{{Metric: "test_accuracy", Min: numberPtr(passMark)}},
				}},
			})).To(Succeed())

			// startCandidate starts a manager that competes for leaseName only; it relies on
			// leader election being on by default.
			startCandidate := func(name string) *managerProcess {
				GinkgoHelper()
				probe := fmt.Sprintf("127.0.0.1:%d", freePort())
				m, err := startManager(managerBinary(), filepath.Join(workDir, "failover-"+name+".log"), kubeconfig,
					"--leader-election-namespace="+ns,
					"--leader-election-id="+leaseName,
					"--leader-election-lease-duration="+leaseDuration,
					"--leader-election-renew-deadline="+renewDeadline,
					"--leader-election-retry-period="+retryPeriod,
					"--watch-namespaces="+ns,
					"--health-probe-bind-address="+probe,
					"--metrics-bind-address=0",
				)
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(func() {
					_ = m.cmd.Process.Signal(syscall.SIGCONT) // a frozen process would hold SIGTERM
					m.stop(10 * time.Second)
					if CurrentSpecReport().Failed() {
						m.printLog()
					}
				})
				waitReady(m, probe)
				return m
			}
			// holder is the Lease's holderIdentity, empty before the first election.
			holder := func(g Gomega) string {
				var l coordinationv1.Lease
				err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseName}, &l)
				if apierrors.IsNotFound(err) {
					return ""
				}
				g.Expect(err).NotTo(HaveOccurred())
				if l.Spec.HolderIdentity == nil {
					return ""
				}
				return *l.Spec.HolderIdentity
			}
			// awaitHolder waits until the Lease is held by someone other than previous, by a
			// controller-runtime identity (<hostname>_<uuid>), and returns it.
			awaitHolder := func(previous string) string {
				GinkgoHelper()
				var h string
				Eventually(func(g Gomega) string {
					h = holder(g)
					return h
				}).WithTimeout(takeover).Should(And(
					MatchRegexp(`^`+regexp.QuoteMeta(hostname)+`_[0-9a-f-]{36}$`), Not(Equal(previous))),
					"the Lease %s/%s should change hands", ns, leaseName)
				return h
			}
			// awaitAcquired waits until m logs that it acquired the Lease.
			awaitAcquired := func(m *managerProcess) {
				GinkgoHelper()
				Eventually(m.logMatches).WithArguments(acquiredLease).WithTimeout(10*time.Second).
					Should(BeTrue(), "%s should log that it acquired the Lease", m.logPath)
			}

			By("starting two managers that compete for the Lease " + leaseName)
			a, b := startCandidate("a"), startCandidate("b")
			first := awaitHolder("")
			// leader1 leads first and is frozen; leader2 takes over and is killed; leader3, leader1
			// restarted, takes over from it.
			var leader1, leader2 *managerProcess
			Eventually(func(g Gomega) {
				var acquired []*managerProcess
				for _, m := range []*managerProcess{a, b} {
					if m.logMatches(acquiredLease) {
						acquired = append(acquired, m)
					}
				}
				g.Expect(acquired).To(HaveLen(1), "exactly one manager should log that it acquired the Lease")
				leader1 = acquired[0]
			}).WithTimeout(10 * time.Second).Should(Succeed())
			leader2 = map[*managerProcess]*managerProcess{a: b, b: a}[leader1]
			_, _ = fmt.Fprintf(GinkgoWriter, "leader %s is %s\n", first, leader1.logPath)

			churn := startChurn(ctx, c, ns, model)
			DeferCleanup(churn.stop)
			Eventually(pw.promotions).Should(BeNumerically(">", 0), "the leader should promote a version")

			By("freezing the leader with SIGSTOP until the other has taken over")
			Expect(leader1.cmd.Process.Signal(syscall.SIGSTOP)).To(Succeed())
			frozenAt := time.Now()
			second := awaitHolder(first)
			freezeTakeover := time.Since(frozenAt)
			awaitAcquired(leader2)
			Expect(leader1.exited()).To(BeFalse(), "the frozen manager cannot have exited")

			By("the new leader acts while the old one is frozen: it answers a rollback request")
			// Early in the churn every passing version may be Production or already asked for it:
			// the churn registers more within seconds.
			var rollback string
			Eventually(func() string {
				rollback = pw.pickPassing()
				return rollback
			}).WithTimeout(30*time.Second).ShouldNot(BeEmpty(), "no passing version to roll back to")
			promotionsBefore := pw.promotionsOf(rollback)
			churn.hold(rollback)
			requestedAt := time.Now().Truncate(time.Second) // the history's times have seconds
			// servedSinceRequest says whether the model's StageRecords (the whole record: the
			// status keeps only the newest entries, which the churn replaces within seconds) show
			// the rollback version in Production at some time since requestedAt: promoted since, or
			// Production already, the model's decision ahead of the watch this spec picked it from.
			servedSinceRequest := func(g Gomega) bool {
				var list mlv1.StageRecordList
				g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
				mlv1.SortStageRecords(list.Items)
				serving := false // the rollback version is Production after the records so far
				for _, r := range list.Items {
					e := r.Transition
					if r.Model.Name != model || fmt.Sprintf("%s-%d", model, e.Version) != rollback {
						continue
					}
					if !e.Time.Time.Before(requestedAt) && (serving || e.To == mlv1.StageProduction) {
						return true
					}
					serving = e.To == mlv1.StageProduction
				}
				return serving
			}
			// A new stageRequestID makes it a new request even if the churn asked for Production
			// on this version just before it was held, which the watch may not show yet: the same
			// spec.stage alone would ask for nothing.
			requestID := fmt.Sprintf("failover-%d", time.Now().UnixNano())
			DeferCleanup(func(ctx context.Context) {
				if CurrentSpecReport().Failed() {
					explainRequest(ctx, c, ns, model, rollback, []*managerProcess{leader1, leader2})
				}
			})
			churn.requestAgain(ctx, rollback, mlv1.StageProduction, requestID)
			// The rules act on a request once: the version becomes Production (or is already,
			// when the model's decision was ahead of the watch it was picked from) or, when the
			// churn's Production request for a newer version was first seen in the same view and
			// won, status.requestNote says so. Either way the new leader decided it. The model
			// records a promotion before the version's own status shows it, so a newer registration
			// of the churn may replace the version in the model's decision before its ModelVersion
			// ever shows Production: then the StageRecords are where the promotion shows.
			var rollbackAnswer string
			Eventually(func(g Gomega) {
				if pw.promotionsOf(rollback) > promotionsBefore {
					rollbackAnswer = "promoted"
					return
				}
				if servedSinceRequest(g) {
					rollbackAnswer = "Production since the request in the model's decision (its StageRecords), " +
						"which may replace it before its version shows it"
					return
				}
				var v mlv1.ModelVersion
				g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: rollback}, &v)).To(Succeed())
				g.Expect(v.Status.ObservedGeneration).To(Equal(v.Generation), "%s is not reconciled", rollback)
				g.Expect(v.Status.ObservedStageRequest).To(Equal(mlv1.StageProduction))
				g.Expect(v.Status.ObservedStageRequestID).To(Equal(requestID), "the answer is to this request")
				g.Expect(v.Status.RequestNote).To(ContainSubstring("was not acted on"),
					"the new leader should make %s Production, or say why not", rollback)
				rollbackAnswer = "answered: " + v.Status.RequestNote
			}).Should(Succeed())
			_, _ = fmt.Fprintf(GinkgoWriter, "the rollback request for %s was %s\n", rollback, rollbackAnswer)

			By("resuming the frozen manager: it finds that it lost the Lease and exits")
			resumedAt := leader1.logSize()
			Expect(leader1.cmd.Process.Signal(syscall.SIGCONT)).To(Succeed())
			Eventually(func() bool { done, _ := leader1.exited(); return done }).WithTimeout(takeover).
				Should(BeTrue(), "the resumed manager should exit once it finds its lease lost")
			Expect(leader1.logMatches(leaderElectionLost)).To(BeTrue(), "the resumed manager should log why it exited")
			Expect(holder(Default)).To(Equal(second), "the resumed manager should not take the Lease back")

			By("restarting it, as a follower")
			leader3 := startCandidate("restarted")
			Consistently(leader3.logMatches).WithArguments(acquiredLease).WithTimeout(2*time.Second).
				Should(BeFalse(), "the restarted manager should wait while %s leads", second)
			Expect(holder(Default)).To(Equal(second))

			By("killing the leader with SIGKILL in the middle of a promotion")
			target := pw.pickPassing()
			Expect(target).NotTo(BeEmpty(), "no passing version to promote")
			churn.hold(target)
			killed := make(chan string, 1)
			var killOnce sync.Once
			kill := func(when string) {
				killOnce.Do(func() {
					_ = leader2.cmd.Process.Signal(syscall.SIGKILL)
					killed <- when
				})
			}
			// The first write of a promotion takes Production from the version that holds it; the
			// watch fires the kill from its goroutine as soon as it sees that write.
			previous := pw.production()
			pw.onChange(func(vs map[string]mlv1.ModelVersion) bool {
				stillProduction := slices.ContainsFunc(previous, func(n string) bool {
					return vs[n].Status.Stage == mlv1.StageProduction
				})
				targetProduction := vs[target].Status.Stage == mlv1.StageProduction
				switch {
				case len(previous) > 0 && !stillProduction && !targetProduction:
					kill(fmt.Sprintf("between the promotion's writes: %v left Production, %s not yet Production", previous, target))
				case targetProduction:
					kill(fmt.Sprintf("after the promotion: %s already Production", target))
				default:
					return false
				}
				return true
			})
			churn.request(ctx, target, mlv1.StageProduction)
			var killedWhen string
			select {
			case killedWhen = <-killed:
			case <-time.After(5 * time.Second):
				kill("5s after the request, with no sign of the promotion")
				killedWhen = <-killed
			}
			killedAt := time.Now()
			_, _ = fmt.Fprintf(GinkgoWriter, "killed %s (%s) %s\n", second, leader2.logPath, killedWhen)
			third := awaitHolder(second)
			killTakeover := time.Since(killedAt)
			awaitAcquired(leader3)
			Expect(third).NotTo(Equal(first), "a restarted manager elects with a new identity")

			By("the last leader converges: the model's Production version is the only one")
			Eventually(pw.events).Should(BeNumerically(">", pw.events()+20), "the churn should go on under the new leader")
			churn.stop()
			// converged checks that every object is reconciled and that the model's
			// status.productionVersion is its only Production version, and returns that.
			converged := func(g Gomega) []int64 {
				var m mlv1.RegisteredModel
				g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: model}, &m)).To(Succeed())
				g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation), "the model is not reconciled")
				var list mlv1.ModelVersionList
				g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
				var production []int64
				for _, v := range list.Items {
					g.Expect(v.Status.ObservedGeneration).To(Equal(v.Generation), "%s is not reconciled", v.Name)
					if v.Status.Stage == mlv1.StageProduction {
						production = append(production, v.Spec.Version)
					}
				}
				if m.Status.ProductionVersion == nil {
					g.Expect(production).To(BeEmpty(), "Production versions of a model without status.productionVersion")
				} else {
					g.Expect(production).To(Equal([]int64{*m.Status.ProductionVersion}),
						"status.productionVersion %d and the Production versions", *m.Status.ProductionVersion)
				}
				return production
			}
			Eventually(converged).WithTimeout(time.Minute).MustPassRepeatedly(3).Should(Or(BeEmpty(), HaveLen(1)))
			// Every request has been acted on, so a new passing version is the newest event.
			By("registering a final version that passes: it becomes the only Production version")
			final := churn.register(ctx, 0.99)
			Eventually(converged).WithTimeout(time.Minute).MustPassRepeatedly(3).Should(Equal([]int64{final}))

			violations, events, promotions, watchErr := pw.report()
			registered, productionRequests, archiveRequests, churnErrs := churn.report()
			summary := fmt.Sprintf("%s: %d versions registered, %d Production and %d Archived requests, "+
				"%d watch events, %d promotions seen; takeover after SIGSTOP %s, after SIGKILL %s; killed %s; "+
				"after it resumed, the frozen manager logged %d stage changes and %d write conflicts before it exited",
				time.Since(start).Round(time.Second), registered, productionRequests, archiveRequests, events, promotions,
				freezeTakeover.Round(100*time.Millisecond), killTakeover.Round(100*time.Millisecond), killedWhen,
				leader1.logCountFrom(resumedAt, stageChanged), leader1.logCountFrom(resumedAt, conflict))
			AddReportEntry("failover", summary)
			Expect(churnErrs).To(BeEmpty(), "the churn's writes should succeed")
			Expect(watchErr).NotTo(HaveOccurred(), "the watch must cover the whole spec")
			Expect(events).To(BeNumerically(">", 100), "the watch saw too few changes to prove anything")
			Expect(violations).To(BeEmpty(), "two Production versions of one model at the same instant")
		}, NodeTimeout(4*time.Minute))
})

// passMark is the failover model's gate: test_accuracy >= 0.85.
const passMark = 0.85

var (
	// acquiredLease is client-go's log line when a manager becomes leader.
	acquiredLease = regexp.MustCompile(`(?i)successfully acquired lease`)
	// leaderElectionLost is controller-runtime's error when a leader finds it has lost its Lease.
	leaderElectionLost = regexp.MustCompile(`leader election lost`)
	// conflict is the API server's answer to a write based on an old resourceVersion.
	conflict = regexp.MustCompile(`the object has been modified`)
	// stageChanged is the manager's log line for a stage change it wrote.
	stageChanged = regexp.MustCompile(`"Stage changed"`)
)

func numberPtr(f float64) *mlv1.Number {
	n := mlv1.NewNumber(f)
	return &n
}

// failoverClient is an uncached client of the e2e cluster, as its admin, that can watch.
func failoverClient() client.WithWatch {
	GinkgoHelper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	cfg.QPS, cfg.Burst = 200, 400
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(mlv1.AddToScheme(scheme)).To(Succeed())
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// logMatches tells whether the process's whole log matches re.
func (m *managerProcess) logMatches(re *regexp.Regexp) bool { return m.logCountFrom(0, re) > 0 }

// logSize is the length of the process's log so far.
func (m *managerProcess) logSize() int64 {
	fi, err := os.Stat(m.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logCountFrom counts the lines of the process's log from byte offset on that match re.
func (m *managerProcess) logCountFrom(offset int64, re *regexp.Regexp) int {
	data, err := os.ReadFile(m.logPath)
	if err != nil || offset > int64(len(data)) {
		return 0
	}
	n := 0
	for line := range strings.Lines(string(data[offset:])) {
		if re.MatchString(line) {
			n++
		}
	}
	return n
}

// productionWatch follows every ModelVersion of a namespace through one watch, which delivers
// each change in the order the API server made it, and records any instant at which two versions
// of one model were Production.
type productionWatch struct {
	mu         sync.Mutex
	versions   map[string]mlv1.ModelVersion
	violations []string
	doubled    map[string]string // per model, the Production versions of the last violation recorded
	count      int
	entered    map[string]int // how often each version entered Production
	hook       func(map[string]mlv1.ModelVersion) bool
	stopped    bool
	err        error // why the watch ended before the spec did
}

func watchProductionE2E(ctx context.Context, c client.WithWatch, ns string) *productionWatch {
	GinkgoHelper()
	w, err := c.Watch(ctx, &mlv1.ModelVersionList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	pw := &productionWatch{versions: map[string]mlv1.ModelVersion{}, entered: map[string]int{},
		doubled: map[string]string{}}
	go func() {
		defer GinkgoRecover()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				pw.fail(fmt.Errorf("watch error: %v", apierrors.FromObject(ev.Object)))
				continue
			}
			if v, ok := ev.Object.(*mlv1.ModelVersion); ok {
				pw.observe(ev.Type, v)
			}
		}
		pw.fail(errors.New("the watch ended early"))
	}()
	DeferCleanup(func() {
		pw.mu.Lock()
		pw.stopped = true
		pw.mu.Unlock()
		w.Stop()
	})
	return pw
}

func (pw *productionWatch) fail(err error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if !pw.stopped && pw.err == nil {
		pw.err = err
	}
}

func (pw *productionWatch) observe(t watch.EventType, v *mlv1.ModelVersion) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.count++
	was := pw.versions[v.Name].Status.Stage == mlv1.StageProduction
	if t == watch.Deleted {
		delete(pw.versions, v.Name)
	} else {
		pw.versions[v.Name] = *v
		if !was && v.Status.Stage == mlv1.StageProduction {
			pw.entered[v.Name]++
		}
	}
	byModel := map[string][]string{}
	for name, mv := range pw.versions {
		if mv.Status.Stage == mlv1.StageProduction {
			byModel[mv.Spec.RegisteredModel] = append(byModel[mv.Spec.RegisteredModel], name)
		}
	}
	for model := range pw.doubled {
		if len(byModel[model]) < 2 {
			delete(pw.doubled, model)
		}
	}
	// A violation is recorded when it starts and whenever its versions change, not at every event
	// while it lasts.
	for model, names := range byModel {
		slices.Sort(names)
		if key := strings.Join(names, ","); len(names) > 1 && pw.doubled[model] != key {
			pw.doubled[model] = key
			pw.violations = append(pw.violations, fmt.Sprintf("%s had %d Production versions from resourceVersion %s: %v",
				model, len(names), v.ResourceVersion, names))
		}
	}
	if pw.hook != nil && pw.hook(pw.versions) {
		pw.hook = nil
	}
}

// onChange calls f, under the watch's lock, after each change until it returns true.
func (pw *productionWatch) onChange(f func(map[string]mlv1.ModelVersion) bool) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.hook = f
}

func (pw *productionWatch) events() int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.count
}

// promotions counts the entries of any version into Production.
func (pw *productionWatch) promotions() int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	n := 0
	for _, e := range pw.entered {
		n += e
	}
	return n
}

func (pw *productionWatch) promotionsOf(name string) int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.entered[name]
}

// production names the versions that are Production now.
func (pw *productionWatch) production() []string {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var names []string
	for name, v := range pw.versions {
		if v.Status.Stage == mlv1.StageProduction {
			names = append(names, name)
		}
	}
	return names
}

// pickPassing names a version that passes the gate and that a Production request would move:
// neither Production nor already requested to be. It prefers the newest one older than the
// Production version, which makes the request a rollback; empty when there is none.
func (pw *productionWatch) pickPassing() string {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var current int64
	for _, v := range pw.versions {
		if v.Status.Stage == mlv1.StageProduction {
			current = v.Spec.Version
		}
	}
	var best, fallback *mlv1.ModelVersion
	for name := range pw.versions {
		v := pw.versions[name]
		if v.Status.Stage == mlv1.StageProduction || v.Spec.Stage == mlv1.StageProduction ||
			v.Spec.Metrics["test_accuracy"].Float64() < passMark {
			continue
		}
		if fallback == nil || v.Spec.Version > fallback.Spec.Version {
			fallback = &v
		}
		if v.Spec.Version < current && (best == nil || v.Spec.Version > best.Spec.Version) {
			best = &v
		}
	}
	switch {
	case best != nil:
		return best.Name
	case fallback != nil:
		return fallback.Name
	}
	return ""
}

func (pw *productionWatch) report() (violations []string, events, promotions int, err error) {
	promotions = pw.promotions()
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return slices.Clone(pw.violations), pw.count, promotions, pw.err
}

// churn registers versions of one model and requests stages on them from a goroutine, one
// change every 100ms: versions that pass the gate and versions that fail it, Production requests
// (rollbacks and promotions of versions the gate or a later version kept out) and Archived
// requests (retirements, of the Production version too).
type churn struct {
	c         client.Client
	ns, model string
	cancel    context.CancelFunc
	done      chan struct{}

	mu                                      sync.Mutex
	next                                    int64
	requested                               map[string]mlv1.Stage // spec.stage of every version registered
	held                                    map[string]bool       // versions the spec requests stages for itself
	registered, productionReqs, archiveReqs int
	errs                                    []error
}

func startChurn(ctx context.Context, c client.Client, ns, model string) *churn {
	ctx, cancel := context.WithCancel(ctx)
	ch := &churn{c: c, ns: ns, model: model, cancel: cancel, done: make(chan struct{}),
		requested: map[string]mlv1.Stage{}, held: map[string]bool{}}
	rng := rand.New(rand.NewPCG(uint64(GinkgoRandomSeed()), 7))
	go func() {
		defer GinkgoRecover()
		defer close(ch.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				ch.step(ctx, rng)
			}
		}
	}()
	return ch
}

// step makes one change: 45% registrations (two thirds of them pass the gate), 35% Production
// requests, 20% Archived requests.
func (ch *churn) step(ctx context.Context, rng *rand.Rand) {
	r := rng.IntN(20)
	if r < 9 || ch.size() == 0 {
		ch.register(ctx, 0.80+float64(rng.IntN(15))/100)
		return
	}
	stage := mlv1.StageProduction
	if r >= 16 {
		stage = mlv1.StageArchived
	}
	if name := ch.pick(rng, stage); name != "" {
		ch.request(ctx, name, stage)
	}
}

func (ch *churn) size() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.requested)
}

// pick names a random version whose spec.stage is not stage yet.
func (ch *churn) pick(rng *rand.Rand, stage mlv1.Stage) string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var names []string
	for name, requested := range ch.requested {
		if requested != stage && !ch.held[name] {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return names[rng.IntN(len(names))]
}

// register creates the model's next version with the given test_accuracy, and returns its number.
func (ch *churn) register(ctx context.Context, accuracy float64) int64 {
	ch.mu.Lock()
	ch.next++
	n := ch.next
	ch.mu.Unlock()
	v := &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", ch.model, n), Namespace: ch.ns},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: ch.model,
			Version:         n,
			Artifact:        mlv1.Artifact{URI: fmt.Sprintf("s3://e2e/%s/%d/", ch.model, n)},
			Metrics:         map[string]mlv1.Number{"test_accuracy": mlv1.NewNumber(accuracy)},
		},
	}
	err := ch.c.Create(ctx, v)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.record(ctx, err, "registering "+v.Name) {
		ch.registered++
		ch.requested[v.Name] = ""
	}
	return n
}

// hold keeps the churn from requesting stages for the version name, so that the spec's own
// request for it stands.
func (ch *churn) hold(name string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.held[name] = true
}

// request patches spec.stage of the version name.
func (ch *churn) request(ctx context.Context, name string, stage mlv1.Stage) {
	patch := fmt.Appendf(nil, `{"spec":{"stage":%q}}`, stage)
	err := ch.c.Patch(ctx, &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ch.ns}},
		client.RawPatch(types.MergePatchType, patch))
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.record(ctx, err, fmt.Sprintf("requesting %s for %s", stage, name)) {
		ch.requested[name] = stage
		if stage == mlv1.StageProduction {
			ch.productionReqs++
		} else {
			ch.archiveReqs++
		}
	}
}

// requestAgain patches spec.stage and a new spec.stageRequestID of the version name, in one
// write: a new request for the stage, even when the version already asks for it.
func (ch *churn) requestAgain(ctx context.Context, name string, stage mlv1.Stage, id string) {
	patch := fmt.Appendf(nil, `{"spec":{"stage":%q,"stageRequestID":%q}}`, stage, id)
	err := ch.c.Patch(ctx, &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ch.ns}},
		client.RawPatch(types.MergePatchType, patch))
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.record(ctx, err, fmt.Sprintf("requesting %s again for %s", stage, name)) {
		ch.requested[name] = stage
		ch.productionReqs++
	}
}

// record keeps err, unless the churn was stopped meanwhile, and says whether the write succeeded.
// The caller holds mu.
func (ch *churn) record(ctx context.Context, err error, what string) bool {
	if err != nil && ctx.Err() == nil {
		ch.errs = append(ch.errs, fmt.Errorf("%s: %w", what, err))
	}
	return err == nil
}

// stop ends the goroutine and waits for it; calling it again does nothing.
func (ch *churn) stop() {
	ch.cancel()
	<-ch.done
}

func (ch *churn) report() (registered, productionReqs, archiveReqs int, errs []error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.registered, ch.productionReqs, ch.archiveReqs, slices.Clone(ch.errs)
}

// explainRequest writes what the cluster and the managers' logs say about the rollback version,
// so that a failed answer to its request can be read after the spec: its status, the model's
// decision and handled requests, its StageRecords, and every log line that names it.
func explainRequest(ctx context.Context, c client.Client, ns, model, name string, managers []*managerProcess) {
	w := GinkgoWriter
	var v mlv1.ModelVersion
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &v); err == nil {
		spec, _ := json.Marshal(v.Spec)
		status, _ := json.Marshal(v.Status)
		_, _ = fmt.Fprintf(w, "\n===== %s: generation %d, uid %s\nspec %s\nstatus %s\n", name, v.Generation, v.UID, spec, status)
	}
	var m mlv1.RegisteredModel
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: model}, &m); err == nil {
		handled, _ := json.Marshal(m.Status.HandledRequests)
		_, _ = fmt.Fprintf(w, "model: production %s, decisionSequence %d, handledRequests %s\n",
			versionText(m.Status.ProductionVersion), m.Status.DecisionSequence, handled)
	}
	var list mlv1.StageRecordList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err == nil {
		mlv1.SortStageRecords(list.Items)
		for _, r := range list.Items {
			if fmt.Sprintf("%s-%d", model, r.Transition.Version) == name {
				t, _ := json.Marshal(r.Transition)
				_, _ = fmt.Fprintf(w, "record %s\n", t)
			}
		}
	}
	number := name[strings.LastIndex(name, "-")+1:]
	for _, mp := range managers {
		data, err := os.ReadFile(mp.logPath)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, name) || strings.Contains(line, `"version":`+number+`,`) {
				_, _ = fmt.Fprintf(w, "%s: %s", filepath.Base(mp.logPath), line)
			}
		}
	}
	_, _ = fmt.Fprintf(w, "===== end of %s\n", name)
}

func versionText(v *int64) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprint(*v)
}
